"""Orders in the store: row mapping, the coordinator's loads and lookups, and its writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import stable_hash
from marketplace.domain.orders import Order, OrderItem, OrderStatus, ShippingAddress
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
from marketplace.store.rows import owned
from marketplace.store.tables import idempotency_keys, orders, outbox
from marketplace.store.writer import Writer


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


async def load_owned(
    engine: AsyncEngine, index: int, count: int
) -> tuple[list[Order], dict[str, str]]:
    """The orders coordinator ``index`` of ``count`` owns, and the request fingerprint of each
    (by order id) from its idempotency key."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(orders).where(owned(orders, index, count)))
        loaded = [order_from_row(row) for row in rows.mappings()]
        ids = {order.id for order in loaded}
        keys = await conn.execute(
            select(idempotency_keys.c.order_id, idempotency_keys.c.fingerprint)
        )
        fingerprints = {order_id: digest for order_id, digest in keys if order_id in ids}
    return loaded, fingerprints


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


async def write_placed(writer: Writer, changes: Changes) -> None:
    """Write ``placed`` changes; ``AlreadyStored`` when the store has the order's rows."""
    try:
        await writer.write(changes)
    except IntegrityError as exc:
        raise AlreadyStored(str(exc)) from exc


def saved(order: Order, source: str, events: Iterable[DomainEvent]) -> Changes:
    """An order's new state, with its events."""
    return Changes().upsert(orders, [order_row(order)], ["id"]).events(source, events)
