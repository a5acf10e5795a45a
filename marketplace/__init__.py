"""Marketplace: an actor-model distributed marketplace runtime.

Layers, from the bottom (``lint-imports`` enforces them; see ``[tool.importlinter]`` in
pyproject.toml):

- the core, framework-free, no Ray: ``marketplace.domain`` (entities and rules),
  ``marketplace.store`` (tables, writer, migrations), ``marketplace.events`` (envelope, outbox
  relay, RabbitMQ bridge), ``marketplace.config`` (settings), ``marketplace.audit`` (invariant
  checks) and ``marketplace.passwords``;
- ``actors`` adapts the core to Ray; ``serve_app`` exposes it over HTTP;
- the drivers on top: ``marketplace.cli`` (the ``marketplace`` command), ``marketplace.sim``
  (the synthetic market and seeding), ``marketplace.bench`` (the benchmarks) and ``load``
  (Locust load tests).
"""

__version__ = "0.1.0"
