"""The seller view's facts in the store, and the orders it has yet to count."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.orders import SOLD_STATUSES, Order, OrderStatus
from marketplace.domain.sellers import Dashboard, SellerOrderFact
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
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


async def order_count(engine: AsyncEngine) -> int:
    """How many orders have facts (whether the view's cache holds them all)."""
    query = select(func.count(distinct(seller_order_facts.c.order_id)))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def load_orders(engine: AsyncEngine, order_ids: Iterable[str]) -> list[SellerOrderFact]:
    """The facts of ``order_ids`` (a primary-key range each); a database outage is a 503."""
    query = select(seller_order_facts).where(seller_order_facts.c.order_id.in_(list(order_ids)))
    with unavailable_on_outage("the seller view's store"):
        async with engine.connect() as conn:
            rows = await conn.execute(query)
            return [_fact_from_row(row) for row in rows.mappings()]


async def dashboards(engine: AsyncEngine) -> tuple[list[Dashboard], int]:
    """Every seller's dashboard summed over the stored facts (one GROUP BY, as
    ``Dashboard.add`` counts them, ``as_of`` the newest fact's), and how many facts there are."""
    facts = seller_order_facts
    sold = facts.c.status.in_([status.value for status in SOLD_STATUSES])

    def when_sold(value: Any) -> Any:
        return func.coalesce(func.sum(case((sold, value), else_=0)), 0)

    query = select(
        facts.c.seller_id,
        func.count().label("facts"),
        when_sold(1).label("orders_count"),
        when_sold(facts.c.items_sold).label("items_sold"),
        when_sold(facts.c.revenue_cents).label("revenue_cents"),
        func.coalesce(
            func.sum(case((facts.c.status == OrderStatus.CONFIRMED.value, 1), else_=0)), 0
        ).label("open_orders"),
        func.max(facts.c.applied_at).label("as_of"),
    ).group_by(facts.c.seller_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    total = sum(int(row["facts"]) for row in rows)
    boards = [
        Dashboard(
            seller_id=row["seller_id"],
            orders_count=int(row["orders_count"]),
            items_sold=int(row["items_sold"]),
            revenue_cents=int(row["revenue_cents"]),
            open_orders=int(row["open_orders"]),
            as_of=row["as_of"],
            as_of_version=total,
        )
        for row in rows
    ]
    return boards, total


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
