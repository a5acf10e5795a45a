"""Shipments in the store: row mapping, the coordinator's loads and lookups, its writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import stable_hash
from marketplace.domain.shipments import Package, Shipment
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
from marketplace.store.rows import owned
from marketplace.store.tables import shipments


def _shipment_from_row(row: Any) -> Shipment:
    data = dict(row)
    data["packages"] = tuple(Package.model_validate(p) for p in data["packages"])
    return Shipment.model_validate(data)


async def load_owned(engine: AsyncEngine, index: int, count: int) -> list[Shipment]:
    """The shipments coordinator ``index`` of ``count`` owns."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(shipments).where(owned(shipments, index, count)))
        return [_shipment_from_row(row) for row in rows.mappings()]


async def owned_count(engine: AsyncEngine, index: int, count: int) -> int:
    """How many shipments coordinator ``index`` of ``count`` owns (whether they fit its
    cache)."""
    query = select(func.count()).select_from(shipments).where(owned(shipments, index, count))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def load_one(engine: AsyncEngine, order_id: str) -> Shipment | None:
    """The stored shipment of ``order_id``, if one was opened; a database outage is a 503."""
    with unavailable_on_outage("the shipments store"):
        async with engine.connect() as conn:
            rows = await conn.execute(select(shipments).where(shipments.c.order_id == order_id))
            row = rows.mappings().first()
    return None if row is None else _shipment_from_row(row)


def saved(shipment: Shipment, source: str, events: Iterable[DomainEvent]) -> Changes:
    """A shipment's new state and its events."""
    row = {**shipment.model_dump(mode="json"), "route_key": stable_hash(shipment.order_id)}
    return Changes().upsert(shipments, [row], ["id"]).events(source, events)
