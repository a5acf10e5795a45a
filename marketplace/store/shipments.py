"""Shipments in the store: row mapping, the coordinator's load and its writes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import stable_hash
from marketplace.domain.shipments import Package, Shipment
from marketplace.store.changes import Changes
from marketplace.store.rows import owned
from marketplace.store.tables import shipments


async def load_owned(engine: AsyncEngine, index: int, count: int) -> list[Shipment]:
    """The shipments coordinator ``index`` of ``count`` owns."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(shipments).where(owned(shipments, index, count)))
        loaded = []
        for row in rows.mappings():
            data = dict(row)
            data["packages"] = tuple(Package.model_validate(p) for p in data["packages"])
            loaded.append(Shipment.model_validate(data))
    return loaded


def saved(shipment: Shipment, source: str, events: Iterable[DomainEvent]) -> Changes:
    """A shipment's new state and its events."""
    row = {**shipment.model_dump(mode="json"), "route_key": stable_hash(shipment.order_id)}
    return Changes().upsert(shipments, [row], ["id"]).events(source, events)
