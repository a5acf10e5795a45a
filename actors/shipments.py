"""ShipmentCoordinator: shipments by order id, one package per seller."""

from __future__ import annotations

from typing import Any

import ray

from actors.base import ActorBase
from actors.lru import LruCache
from actors.protocols import ShipmentCoordinatorApi
from marketplace.domain.errors import NotFound
from marketplace.domain.events import DomainEvent
from marketplace.domain.orders import Order
from marketplace.domain.shipments import Shipment, ShipmentStatus, open_shipment
from marketplace.store import shipments as store
from marketplace.store.writer import Writer


class ShipmentCoordinator(ActorBase):
    """Owns shipments by ``stable_hash(order_id) % coordinators``.

    With sync durability the store has every shipment before memory does, so memory keeps only
    the ``shipment_cache_size`` most recently used, and reads any other back from the store,
    under the order's lock, before opening or moving it: opening is still once per order, and
    a move still follows the state machine from the stored status. Not even pending shipments
    stay: they wait on carriers, for as long as a seller takes, so keeping them would keep a
    record per unshipped order. With async or none durability memory is the newest (or the
    only) copy and keeps every shipment.
    """

    SOURCE = "marketplace/shipments"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        # Whether load() read every shipment owned here (see _knows_every_shipment).
        self._loaded_all = True
        super().__init__(settings, index, count, writer=writer)
        # shipments by order id: all of them, or the most recently used (``store_first``)
        self.shipments: LruCache[str, Shipment] = LruCache(
            self.settings.shipment_cache_size if self.store_first else None
        )

    async def load(self) -> None:
        # Every shipment when the cache holds them all, so that opening a new one asks the
        # store nothing; past that none: each is read back when asked for.
        fits = not self.store_first or (
            await store.owned_count(self.database, self.index, self.count)
            <= self.settings.shipment_cache_size
        )
        if fits:
            for shipment in await store.load_owned(self.database, self.index, self.count):
                self.shipments[shipment.order_id] = shipment
        self._loaded_all = fits

    async def open_shipment(self, order: Order) -> Shipment:
        """Open the shipment of a confirmed order; idempotent."""
        await self.loaded()
        async with self.locks.hold(order.id):
            existing = await self._shipment(order.id)
            if existing is not None:
                return existing
            shipment, event = open_shipment(order)
            await self._save(shipment, event)
            return shipment

    async def move(self, order_id: str, status: ShipmentStatus) -> Shipment:
        """Move a shipment on; repeating the current status is a no-op."""
        await self.loaded()
        async with self.locks.hold(order_id):
            shipment = await self._shipment(order_id)
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
        held = self.shipments.get(order_id)
        if held is not None:
            return held
        async with self.locks.hold(order_id):
            return await self._shipment(order_id)

    async def snapshot(self) -> list[Shipment]:
        """Every shipment of this coordinator (audit): as memory holds it, and, for those
        memory let go of (``store_first``), as the store does, which is how ``get`` answers."""
        await self.loaded()
        held = dict(self.shipments.items())
        if not self.store_first or self._knows_every_shipment():
            return list(held.values())
        stored = await store.load_owned(self.database, self.index, self.count)
        return [*held.values(), *(s for s in stored if s.order_id not in held)]

    async def _save(self, shipment: Shipment, event: DomainEvent) -> None:
        await self.writer.write(store.saved(shipment, self.SOURCE, [event]))
        self.shipments[shipment.order_id] = shipment

    async def _shipment(self, order_id: str) -> Shipment | None:
        """The order's shipment: memory's copy, or the store's when memory let it go (under
        the order's lock, so that what is read back, and kept, is not older than a change)."""
        shipment = self.shipments.get(order_id)
        if shipment is not None or not self.store_first or self._knows_every_shipment():
            return shipment
        stored = await store.load_one(self.database, order_id)
        if stored is not None:
            self.shipments[order_id] = stored
        return stored

    def _knows_every_shipment(self) -> bool:
        """Whether memory holds every shipment owned here (loaded all of them, and let none
        go since), so that an order it holds none of has none."""
        return self._loaded_all and self.shipments.dropped == 0


_ANSWERS: type[ShipmentCoordinatorApi] = (
    ShipmentCoordinator  # mypy checks the class against its protocol
)
ShipmentCoordinatorActor = ray.remote(ShipmentCoordinator)
