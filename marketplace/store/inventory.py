"""Stock and reservations in the store: row mapping, loads, lookups and writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.ids import stable_hash
from marketplace.domain.inventory import Reservation, ReservationState, StockItem, stock_changed
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
from marketplace.store.rows import insert_ignore, owned, utcnow
from marketplace.store.tables import reservations, stock_items, stock_movements


class DuplicateRequest(Exception):
    """A stock movement with this request id was already applied, with ``delta``."""

    def __init__(self, request_id: str, delta: int) -> None:
        super().__init__(request_id)
        self.delta = delta


def _applied_delta(request_id: str) -> Select[tuple[int]]:
    """The delta a stock movement applied under ``request_id`` (no row when none did)."""
    return select(stock_movements.c.delta).where(stock_movements.c.request_id == request_id)


async def load_owned(
    engine: AsyncEngine, index: int, count: int, *, held_only: bool = False
) -> tuple[list[StockItem], list[Reservation]]:
    """The stock items and reservations partition ``index`` of ``count`` owns (with
    ``held_only``, only the reservations still held: the open work)."""
    query = select(reservations).where(owned(reservations, index, count))
    if held_only:
        query = query.where(reservations.c.state == ReservationState.HELD.value)
    async with engine.connect() as conn:
        rows = await conn.execute(select(stock_items).where(owned(stock_items, index, count)))
        stock = [StockItem.model_validate(dict(row)) for row in rows.mappings()]
        rows = await conn.execute(query)
        held = [Reservation.model_validate(dict(row)) for row in rows.mappings()]
    return stock, held


async def order_count(engine: AsyncEngine, index: int, count: int) -> int:
    """How many orders have reservations that partition ``index`` of ``count`` owns."""
    query = select(func.count(distinct(reservations.c.order_id))).where(
        owned(reservations, index, count)
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def load_order(
    engine: AsyncEngine, order_id: str, index: int, count: int
) -> list[Reservation]:
    """The reservations of ``order_id`` that partition ``index`` of ``count`` owns; a database
    outage is a 503."""
    query = select(reservations).where(
        reservations.c.order_id == order_id, owned(reservations, index, count)
    )
    with unavailable_on_outage("the inventory store"):
        async with engine.connect() as conn:
            rows = await conn.execute(query)
            return [Reservation.model_validate(dict(row)) for row in rows.mappings()]


async def load_item(engine: AsyncEngine, product_id: str) -> StockItem | None:
    """The stored stock of ``product_id``, if it has a row; a database outage is a 503."""
    with unavailable_on_outage("the inventory store"):
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(stock_items).where(stock_items.c.product_id == product_id)
            )
            row = rows.mappings().first()
    return None if row is None else StockItem.model_validate(dict(row))


async def load_all(conn: AsyncConnection) -> tuple[list[StockItem], list[Reservation]]:
    """Every stock item and reservation in the store (the audit)."""
    stock = [
        StockItem.model_validate(dict(r))
        for r in (await conn.execute(select(stock_items))).mappings()
    ]
    held = [
        Reservation.model_validate(dict(r))
        for r in (await conn.execute(select(reservations))).mappings()
    ]
    return stock, held


async def movement_totals(conn: AsyncConnection) -> dict[str, int]:
    """Per product, the sum of its stock movements (the audit checks it equals ``stocked``)."""
    query = select(stock_movements.c.product_id, func.sum(stock_movements.c.delta)).group_by(
        stock_movements.c.product_id
    )
    return {pid: int(total) for pid, total in await conn.execute(query)}


async def stored_delta(engine: AsyncEngine, request_id: str) -> int | None:
    """The delta a stock movement applied under ``request_id``, or None when none did."""
    async with engine.connect() as conn:
        delta = (await conn.execute(_applied_delta(request_id))).scalar_one_or_none()
    return None if delta is None else int(delta)


def adjustment(
    request_id: str, delta: int, item: StockItem, source: str
) -> Callable[[AsyncConnection], Awaitable[None]]:
    """A writer's work that records a stock movement once per ``request_id`` and stores
    ``item``, the stock after it; raises ``DuplicateRequest`` when the id was applied before."""
    movement = {
        "request_id": request_id,
        "product_id": item.product_id,
        "delta": delta,
        "created_at": utcnow(),
    }

    async def work(conn: AsyncConnection) -> None:
        if not await insert_ignore(conn, stock_movements, movement, ["request_id"]):
            applied = await conn.execute(_applied_delta(request_id))
            raise DuplicateRequest(request_id, int(applied.scalar_one()))
        await with_items(Changes(), [item], source).apply(conn)

    return work


def reserved(records: Iterable[Reservation], items: Iterable[StockItem], source: str) -> Changes:
    """Reservations in their new states, with the stock they moved."""
    rows = [{**r.model_dump(), "route_key": stable_hash(r.product_id)} for r in records]
    changes = Changes().upsert(reservations, rows, ["order_id", "product_id"])
    return with_items(changes, items, source)


def with_items(changes: Changes, items: Iterable[StockItem], source: str) -> Changes:
    """``changes`` plus the stock rows of ``items`` and their ``stock.changed`` events."""
    items = list(items)
    rows: list[dict[str, Any]] = [
        {**item.model_dump(), "route_key": stable_hash(item.product_id)} for item in items
    ]
    events = [stock_changed(item) for item in items]
    return changes.upsert(stock_items, rows, ["product_id"]).events(source, events)
