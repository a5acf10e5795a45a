"""ShipmentCoordinator: shipments by order id, one package per seller."""

from __future__ import annotations

from typing import Any

import ray

from actors.base import ActorBase
from actors.protocols import ShipmentCoordinatorApi
from marketplace.domain.errors import NotFound
from marketplace.domain.events import DomainEvent
from marketplace.domain.orders import Order
from marketplace.domain.shipments import Shipment, ShipmentStatus, open_shipment
from marketplace.store import shipments as store


class ShipmentCoordinator(ActorBase):
    """Owns shipments by ``stable_hash(order_id) % coordinators``."""

    SOURCE = "marketplace/shipments"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.shipments: dict[str, Shipment] = {}
        super().__init__(settings, index, count)

    async def load(self) -> None:
        for shipment in await store.load_owned(self.database, self.index, self.count):
            self.shipments[shipment.order_id] = shipment

    async def open_shipment(self, order: Order) -> Shipment:
        """Open the shipment of a confirmed order; idempotent."""
        await self.loaded()
        async with self.locks.hold(order.id):
            existing = self.shipments.get(order.id)
            if existing is not None:
                return existing
            shipment, event = open_shipment(order)
            await self._save(shipment, event)
            return shipment

    async def move(self, order_id: str, status: ShipmentStatus) -> Shipment:
        """Move a shipment on; repeating the current status is a no-op."""
        await self.loaded()
        async with self.locks.hold(order_id):
            shipment = self.shipments.get(order_id)
            if shipment is None:
                raise NotFound(f"no shipment for order {order_id}", order_id=order_id)
            if shipment.status is status:
                return shipment
            moved, event = shipment.moved(status)
            await self._save(moved, event)
            return moved

    async def get(self, order_id: str) -> Shipment | None:
        """The shipment of an order, if one was opened."""
        await self.loaded()
        return self.shipments.get(order_id)

    async def snapshot(self) -> list[Shipment]:
        """Every shipment of this coordinator (audit)."""
        await self.loaded()
        return list(self.shipments.values())

    async def _save(self, shipment: Shipment, event: DomainEvent) -> None:
        await self.writer.write(store.saved(shipment, self.SOURCE, [event]))
        self.shipments[shipment.order_id] = shipment


_ANSWERS: type[ShipmentCoordinatorApi] = (
    ShipmentCoordinator  # mypy checks the class against its protocol
)
ShipmentCoordinatorActor = ray.remote(ShipmentCoordinator)
