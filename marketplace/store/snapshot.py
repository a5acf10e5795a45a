"""Read the whole store into an AuditData (for the audit and for tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.audit import AuditData
from marketplace.store import inventory, orders, payments, sellers


async def load_audit_data(engine: AsyncEngine, taken_at: datetime | None = None) -> AuditData:
    """Everything in the store, read in one transaction."""
    async with engine.connect() as conn:
        stock, held = await inventory.load_all(conn)
        order_list = await orders.load_all(conn)
        pays, ledger = await payments.load_all(conn)
        facts = await sellers.load_all(conn)
        movements = await inventory.movement_totals(conn)
        events = await orders.announced(conn)
    return AuditData(
        stock=stock,
        reservations=held,
        orders=order_list,
        payments=pays,
        facts=facts,
        dashboards=[],
        movements=movements,
        ledger=ledger,
        order_events=events,
        taken_at=taken_at or datetime.now(UTC),
    )
