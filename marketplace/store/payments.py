"""Payments and the ledger in the store: row mapping, loads and writes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import stable_hash
from marketplace.domain.payments import Account, LedgerEntry, Payment
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
from marketplace.store.rows import owned, utcnow
from marketplace.store.tables import ledger_entries, payments


async def load_owned(engine: AsyncEngine, index: int, count: int) -> list[Payment]:
    """The payments processor ``index`` of ``count`` owns."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(payments).where(owned(payments, index, count)))
        return [Payment.model_validate(dict(row)) for row in rows.mappings()]


async def owned_count(engine: AsyncEngine, index: int, count: int) -> int:
    """How many payments processor ``index`` of ``count`` owns (whether they fit its cache)."""
    query = select(func.count()).select_from(payments).where(owned(payments, index, count))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def load_one(engine: AsyncEngine, order_id: str) -> Payment | None:
    """The stored payment of ``order_id``, if any; a database outage is a 503."""
    with unavailable_on_outage("the payments store"):
        async with engine.connect() as conn:
            rows = await conn.execute(select(payments).where(payments.c.order_id == order_id))
            row = rows.mappings().first()
    return None if row is None else Payment.model_validate(dict(row))


async def load_all(conn: AsyncConnection) -> tuple[list[Payment], list[LedgerEntry]]:
    """Every payment and ledger entry in the store (the audit)."""
    found = [
        Payment.model_validate(dict(r)) for r in (await conn.execute(select(payments))).mappings()
    ]
    ledger = [
        LedgerEntry(
            order_id=r["order_id"],
            operation=r["operation"],
            account=Account(r["account"]),
            amount_cents=r["amount_cents"],
        )
        for r in (await conn.execute(select(ledger_entries))).mappings()
    ]
    return found, ledger


def saved(
    payment: Payment, entries: Iterable[LedgerEntry], source: str, events: Iterable[DomainEvent]
) -> Changes:
    """A payment's new state, the ledger entries it posted, and its events."""
    now = utcnow()
    row = {**payment.model_dump(), "route_key": stable_hash(payment.order_id)}
    ledger_rows = [{**entry.model_dump(), "created_at": now} for entry in entries]
    return (
        Changes()
        .upsert(payments, [row], ["id"])
        .insert(ledger_entries, ledger_rows)
        .events(source, events)
    )
