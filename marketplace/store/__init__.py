"""Persistence: tables, engine factory, migrations, the outbox and the durability writer."""
