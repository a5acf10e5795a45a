"""The seller view's facts in the store, and the orders it has yet to count."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.sellers import SellerOrderFact
from marketplace.store.changes import Changes
from marketplace.store.orders import order_from_row
from marketplace.store.tables import orders, seller_order_facts


def _fact_from_row(row: Any) -> SellerOrderFact:
    return SellerOrderFact(
        order_id=row["order_id"],
        seller_id=row["seller_id"],
        order_version=row["order_version"],
        status=OrderStatus(row["status"]),
        items_sold=row["items_sold"],
        revenue_cents=row["revenue_cents"],
    )


async def load_facts(engine: AsyncEngine) -> list[tuple[SellerOrderFact, datetime]]:
    """Every fact the view has counted, with when it was applied."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(seller_order_facts))
        return [(_fact_from_row(row), row["applied_at"]) for row in rows.mappings()]


async def load_all(conn: AsyncConnection) -> list[SellerOrderFact]:
    """Every fact in the store (the audit)."""
    rows = await conn.execute(select(seller_order_facts))
    return [_fact_from_row(row) for row in rows.mappings()]


async def orders_behind(engine: AsyncEngine, changed_since: datetime | None) -> list[Order]:
    """The orders (not pending) whose facts the store lacks or holds at an older version; with
    ``changed_since``, only those updated since then (an index range on ``updated_at``)."""
    facts = seller_order_facts
    query = (
        select(orders)
        .outerjoin(facts, facts.c.order_id == orders.c.id)
        .where(
            or_(facts.c.order_id.is_(None), facts.c.order_version < orders.c.version),
            orders.c.status != OrderStatus.PENDING.value,
        )
    )
    if changed_since is not None:
        query = query.where(orders.c.updated_at >= changed_since)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    # an order joins once per fact row: keep one of each
    return list({row["id"]: order_from_row(row) for row in rows}.values())


def applied(facts: Iterable[SellerOrderFact], now: datetime) -> Changes:
    """Facts counted at ``now``."""
    rows = [{**fact.model_dump(), "applied_at": now} for fact in facts]
    return Changes().upsert(seller_order_facts, rows, ["order_id", "seller_id"])
