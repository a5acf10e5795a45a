"""ShipmentCoordinator: shipments by order id, one package per seller."""

from __future__ import annotations

from typing import Any

import ray
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from actors.base import ActorBase
from marketplace.domain.errors import NotFound
from marketplace.domain.events import DomainEvent, EventType
from marketplace.domain.ids import stable_hash
from marketplace.domain.orders import Order
from marketplace.domain.shipments import Package, Shipment, ShipmentStatus, shipment_for
from marketplace.store.changes import Changes
from marketplace.store.tables import shipments


class ShipmentCoordinator(ActorBase):
    """Owns shipments by ``stable_hash(order_id) % coordinators``."""

    SOURCE = "marketplace/shipments"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.shipments: dict[str, Shipment] = {}
        super().__init__(settings, index, count)

    async def load(self, conn: AsyncConnection) -> None:
        rows = await conn.execute(select(shipments).where(self.owned(shipments)))
        for row in rows.mappings():
            data = dict(row)
            data["packages"] = tuple(Package.model_validate(p) for p in data["packages"])
            shipment = Shipment.model_validate(data)
            self.shipments[shipment.order_id] = shipment

    async def open_shipment(self, order: Order) -> Shipment:
        """Open the shipment of a confirmed order; idempotent."""
        await self.ready()
        async with self.locks.hold(order.id):
            existing = self.shipments.get(order.id)
            if existing is not None:
                return existing
            shipment = shipment_for(order)
            await self._save(shipment, EventType.SHIPMENT_CREATED)
            return shipment

    async def move(self, order_id: str, status: ShipmentStatus) -> Shipment:
        """Move a shipment on; repeating the current status is a no-op."""
        await self.ready()
        async with self.locks.hold(order_id):
            shipment = self.shipments.get(order_id)
            if shipment is None:
                raise NotFound(f"no shipment for order {order_id}", order_id=order_id)
            if shipment.status is status:
                return shipment
            moved = shipment.moved_to(status)
            await self._save(moved, EventType.SHIPMENT_UPDATED)
            return moved

    async def get(self, order_id: str) -> Shipment | None:
        """The shipment of an order, if one was opened."""
        await self.ready()
        return self.shipments.get(order_id)

    async def snapshot(self) -> list[Shipment]:
        """Every shipment of this coordinator (audit)."""
        await self.ready()
        return list(self.shipments.values())

    async def _save(self, shipment: Shipment, event_type: EventType) -> None:
        data = shipment.model_dump(mode="json")
        row = {**data, "route_key": stable_hash(shipment.order_id)}
        event = DomainEvent(
            type=event_type, subject=shipment.id, sequence=shipment.version, data=data
        )
        await self.writer.write(
            Changes().upsert(shipments, [row], ["id"]).events(self.SOURCE, [event])
        )
        self.shipments[shipment.order_id] = shipment


ShipmentCoordinatorActor = ray.remote(ShipmentCoordinator)
