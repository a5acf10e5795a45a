"""Read the whole store into an AuditData (for the audit and for tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.audit import AuditData
from marketplace.store import inventory, orders, payments, sellers

# A prune that runs while the audit reads may take events a little younger than the
# retention as of ``taken_at``: orders this close to the edge are not checked either.
PRUNE_MARGIN = timedelta(seconds=60)


async def load_audit_data(
    engine: AsyncEngine, taken_at: datetime | None = None, events_kept_for_s: float | None = None
) -> AuditData:
    """Everything in the store, read in one transaction. ``events_kept_for_s``: the outbox's
    retention (published events older than it may be pruned), None when nothing is pruned."""
    taken_at = taken_at or datetime.now(UTC)
    kept_since = None
    if events_kept_for_s is not None:
        retention = timedelta(seconds=events_kept_for_s)
        kept_since = taken_at - retention + min(PRUNE_MARGIN, retention / 2)
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
        events_kept_since=kept_since,
        taken_at=taken_at,
    )
