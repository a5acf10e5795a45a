"""Orders in the store: row mapping, the coordinator's loads and lookups, and its writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import order_id_for, owner_index, stable_hash
from marketplace.domain.orders import Order, OrderItem, OrderStatus, ShippingAddress
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
from marketplace.store.rows import owned
from marketplace.store.tables import idempotency_keys, orders, outbox
from marketplace.store.writer import Work, Writer


class AlreadyStored(Exception):
    """The store refused a new order's rows: rows with its keys exist (an earlier attempt's
    insert may have committed, its answer lost with the connection)."""


def order_from_row(row: Mapping[Any, Any]) -> Order:
    """An Order from its ``orders`` row."""
    return Order(
        id=row["id"],
        buyer_id=row["buyer_id"],
        status=OrderStatus(row["status"]),
        failure_reason=row["failure_reason"],
        items=tuple(OrderItem.model_validate(item) for item in row["items"]),
        total_cents=row["total_cents"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        card_token=row["card_token"],
        shipping_address=ShippingAddress.model_validate(row["shipping_address"]),
    )


def order_row(order: Order) -> dict[str, Any]:
    """The ``orders`` row of an Order."""
    return {
        "id": order.id,
        "route_key": stable_hash(order.id),
        "buyer_id": order.buyer_id,
        "status": order.status.value,
        "failure_reason": order.failure_reason,
        "items": [item.model_dump() for item in order.items],
        "total_cents": order.total_cents,
        "card_token": order.card_token,
        "shipping_address": order.shipping_address.model_dump(),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "version": order.version,
    }


@dataclass(frozen=True)
class KeyUse:
    """What an Idempotency-Key stands for while it is inside its window: the order it placed,
    the request's fingerprint and when the key was first used."""

    order_id: str
    fingerprint: str
    created_at: datetime


def open_work() -> ColumnElement[bool]:
    """The orders whose saga has work left: pending ones, and confirmed ones whose
    cancellation was begun (``actors.order_memory.needs_saga`` of a row)."""
    return or_(
        orders.c.status == OrderStatus.PENDING.value,
        and_(
            orders.c.status == OrderStatus.CONFIRMED.value,
            orders.c.failure_reason.is_not(None),
        ),
    )


async def load_owned(
    engine: AsyncEngine,
    index: int,
    count: int,
    keys_since: datetime,
    *,
    open_only: bool = False,
) -> tuple[list[Order], dict[str, KeyUse]]:
    """The orders coordinator ``index`` of ``count`` owns (with ``open_only``, only those with
    work left: ``open_work``), and the Idempotency-Keys used since ``keys_since`` (the start of
    their window) whose home it is, by the key's home id (``order_id_for(buyer, key)``, where
    replays of the key are routed; a key's orders are owned by its home, unless the count of
    coordinators changed since).

    Only keys inside the window are read (an index on ``created_at``), not the whole table.
    """
    async with engine.connect() as conn:
        loaded = await owned_orders(conn, index, count, open_only=open_only)
        recent = await conn.execute(
            select(idempotency_keys).where(idempotency_keys.c.created_at >= keys_since)
        )
        homes = ((order_id_for(row["buyer_id"], row["key"]), row) for row in recent.mappings())
        keys = {
            home: KeyUse(row["order_id"], row["fingerprint"], row["created_at"])
            for home, row in homes
            if owner_index(home, count) == index
        }
    return loaded, keys


async def owned_orders(
    conn: AsyncConnection, index: int, count: int, *, open_only: bool = False
) -> list[Order]:
    """The orders coordinator ``index`` of ``count`` owns (only those with work left, with
    ``open_only``)."""
    query = select(orders).where(owned(orders, index, count))
    if open_only:
        query = query.where(open_work())
    return [order_from_row(row) for row in (await conn.execute(query)).mappings()]


async def status_counts(engine: AsyncEngine, index: int, count: int) -> Counter[OrderStatus]:
    """How many orders coordinator ``index`` of ``count`` owns in each status (one GROUP BY,
    so the status gauges count every order without memory holding them)."""
    query = (
        select(orders.c.status, func.count())
        .where(owned(orders, index, count))
        .group_by(orders.c.status)
    )
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return Counter({OrderStatus(status): int(n) for status, n in rows})


async def taken(engine: AsyncEngine, order_id: str, keys_since: datetime) -> bool:
    """Whether the store holds an order ``order_id`` that a new order may not reuse: any, but
    one its Idempotency-Key placed since ``keys_since`` (inside the key's window: an insert
    that committed while its answer was lost, which the key's retry takes up as its own).

    A database outage is raised as ``TransientFailure`` (503).
    """
    joined = orders.outerjoin(idempotency_keys, idempotency_keys.c.order_id == orders.c.id)
    query = select(idempotency_keys.c.created_at).select_from(joined)
    with unavailable_on_outage():
        async with engine.connect() as conn:
            uses = (await conn.execute(query.where(orders.c.id == order_id))).scalars().all()
    return bool(uses) and not any(used is not None and used >= keys_since for used in uses)


async def buyer_page(
    engine: AsyncEngine,
    buyer_id: str,
    index: int,
    count: int,
    limit: int | None = None,
    before: tuple[datetime, str] | None = None,
) -> list[Order]:
    """One buyer's orders that coordinator ``index`` of ``count`` owns, newest first: at most
    ``limit`` (all without) of those whose ``(created_at, id)`` comes before ``before``.

    A keyset query on the index ``(buyer_id, created_at, id)``: a page reads ``limit`` rows
    however many orders the buyer placed before the cursor. A database outage is raised as
    ``TransientFailure`` (503).
    """
    query = select(orders).where(orders.c.buyer_id == buyer_id, owned(orders, index, count))
    if before is not None:
        at, last_id = before
        query = query.where(
            or_(
                orders.c.created_at < at,
                and_(orders.c.created_at == at, orders.c.id < last_id),
            )
        )
    query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc())
    if limit:
        query = query.limit(limit)
    with unavailable_on_outage():
        async with engine.connect() as conn:
            rows = await conn.execute(query)
            return [order_from_row(row) for row in rows.mappings()]


async def load_stored(engine: AsyncEngine, order_id: str) -> tuple[Order | None, str | None]:
    """One order as the store has it, and its request fingerprint (None, None when absent).

    A database outage is raised as ``TransientFailure`` (503), as the writer raises it.
    """
    with unavailable_on_outage():
        async with engine.connect() as conn:
            row = (
                (await conn.execute(select(orders).where(orders.c.id == order_id)))
                .mappings()
                .first()
            )
            fingerprint = (
                await conn.execute(
                    select(idempotency_keys.c.fingerprint).where(
                        idempotency_keys.c.order_id == order_id
                    )
                )
            ).scalar_one_or_none()
    return (None if row is None else order_from_row(row)), fingerprint


async def stored_statuses(engine: AsyncEngine, order_ids: Iterable[str]) -> dict[str, str]:
    """The stored status of each of ``order_ids`` that the store holds (the others are absent:
    a fault plan's check that no order acknowledged as confirmed was lost)."""
    wanted = sorted(set(order_ids))
    found: dict[str, str] = {}
    async with engine.connect() as conn:
        for start in range(0, len(wanted), 500):  # under SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            rows = await conn.execute(
                select(orders.c.id, orders.c.status).where(orders.c.id.in_(chunk))
            )
            found.update({row.id: row.status for row in rows})
    return found


async def load_all(conn: AsyncConnection) -> list[Order]:
    """Every order in the store (the audit)."""
    return [order_from_row(row) for row in (await conn.execute(select(orders))).mappings()]


async def announced(conn: AsyncConnection) -> set[tuple[str, str]]:
    """(order id, event type) of every order event in the outbox (the audit)."""
    query = select(outbox.c.subject, outbox.c.type).where(outbox.c.type.like("order.%"))
    return {(subject, type_) for subject, type_ in await conn.execute(query)}


def placed(
    order: Order,
    key: str,
    fingerprint: str,
    source: str,
    events: Iterable[DomainEvent],
) -> Changes:
    """A new order with the Idempotency-Key (and request fingerprint) that placed it."""
    key_row = {
        "buyer_id": order.buyer_id,
        "key": key,
        "fingerprint": fingerprint,
        "order_id": order.id,
        "created_at": order.created_at,
    }
    return (
        Changes()
        .insert(idempotency_keys, [key_row])
        .insert(orders, [order_row(order)])
        .events(source, events)
    )


def expired_key_dropped(
    buyer_id: str, key: str, expired_before: datetime, changes: Changes
) -> Work:
    """``changes`` (a ``placed`` order) preceded, in the same transaction, by deleting the
    buyer's row for ``key`` when it was used before ``expired_before`` (outside its window):
    a key reused after its window places a new order, and the unique index on (buyer, key)
    would refuse the new row while the old one stays."""

    async def work(conn: AsyncConnection) -> None:
        await conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.buyer_id == buyer_id,
                idempotency_keys.c.key == key,
                idempotency_keys.c.created_at < expired_before,
            )
        )
        await changes.apply(conn)

    return work


async def prune_keys(engine: AsyncEngine, expired_before: datetime, batch: int = 1000) -> int:
    """Delete the Idempotency-Key rows used before ``expired_before``, oldest first, about
    ``batch`` per transaction (short ones: other writers wait for SQLite's one write lock);
    returns how many went."""
    total = 0
    while True:
        async with engine.begin() as conn:
            # The table has no single-column key: the batch ends at the created_at of its
            # last row (ties with it go too), which the index on created_at finds.
            last = (
                await conn.execute(
                    select(idempotency_keys.c.created_at)
                    .where(idempotency_keys.c.created_at < expired_before)
                    .order_by(idempotency_keys.c.created_at)
                    .offset(batch - 1)
                    .limit(1)
                )
            ).scalar_one_or_none()
            bound = idempotency_keys.c.created_at < expired_before
            if last is not None:
                bound = and_(bound, idempotency_keys.c.created_at <= last)
            deleted = (await conn.execute(delete(idempotency_keys).where(bound))).rowcount
        total += deleted
        if last is None:
            return total


async def write_placed(writer: Writer, changes: Changes | Work) -> None:
    """Write ``placed`` changes; ``AlreadyStored`` when the store has the order's rows."""
    try:
        await writer.write(changes)
    except IntegrityError as exc:
        raise AlreadyStored(str(exc)) from exc


def saved(order: Order, source: str, events: Iterable[DomainEvent]) -> Changes:
    """An order's new state, with its events."""
    return Changes().upsert(orders, [order_row(order)], ["id"]).events(source, events)
