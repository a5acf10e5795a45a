"""InboundConsumer: applies messages from ``marketplace.inbound`` (see
``marketplace.events.consumer``) through the owning actors.

``stock.replenished`` restocks through the product's inventory partition with request id
``inbound:<message_id>``, so the stock movements table keeps it to one effect per message id.
``shipment.delivered`` moves the shipment through the order's coordinator (a shipment already
delivered stays as it is; a pending one is shipped first, since it was evidently sent).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import ray

from actors.base import ActorBase
from actors.directory import CATALOG, INVENTORY, ORDERS, SHIPMENTS, Directory
from actors.protocols import (
    CatalogShardApi,
    InboundConsumerApi,
    InventoryPartitionApi,
    OrderCoordinatorApi,
    ShipmentCoordinatorApi,
)
from marketplace.domain.errors import Conflict, DomainError
from marketplace.domain.ids import sibling_id
from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Principal, Role
from marketplace.events import inbox
from marketplace.events.consumer import Consumer
from marketplace.events.messages import (
    InboundMessage,
    Rejected,
    ShipmentDelivered,
    StockReplenished,
    request_id_for,
)
from marketplace.store.rows import utcnow

log = logging.getLogger(__name__)

CARRIER = Principal(id="svc_inbound", role=Role.CARRIER)


class InboundConsumer(ActorBase):
    """Consumes the inbound queue in a background loop."""

    SOURCE = "marketplace/inbound"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.consumer: Consumer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self.pruned = 0
        super().__init__(settings, index, count)
        self.directory = Directory(self.settings)

    async def started(self) -> None:
        if not self.settings.amqp_url:
            log.info("no broker configured: the inbound consumer stays idle")
            return
        self.consumer = Consumer.from_settings(self.settings, self.apply, self.engine)
        self._loop_task = asyncio.get_running_loop().create_task(self._run(self.consumer))
        if self.engine is not None:
            self._prune_task = asyncio.get_running_loop().create_task(self._prune_every())

    async def _prune_every(self) -> None:
        """Every ``retention_interval_s``, forget the message ids applied longer than the
        inbox's retention ago (a failure is logged and left for the next time)."""
        assert self.engine is not None
        retention = timedelta(seconds=self.settings.inbox_retention_s)
        while True:
            await asyncio.sleep(self.settings.retention_interval_s)
            try:
                self.pruned += await inbox.prune(self.engine, utcnow() - retention)
            except Exception as exc:
                log.warning("pruning the inbox failed: %r", exc)

    async def _run(self, consumer: Consumer) -> None:
        names = [
            name
            for kind in (CATALOG, INVENTORY, ORDERS, SHIPMENTS)
            for name in self.directory.names(kind)
        ]
        while True:  # the actors it calls are created before it, but be patient anyway
            try:
                await asyncio.to_thread(self._resolve, names)
                break
            except ValueError:
                await asyncio.sleep(0.5)
        await consumer.run()

    def _resolve(self, names: list[str]) -> None:
        for name in names:
            self.directory.get(name)

    async def stats(self) -> dict[str, Any]:
        """Received, processed, duplicates, retried, dead-lettered, connected."""
        await self.loaded()
        if self.consumer is None:
            return {"connected": False}
        return {**self.consumer.snapshot(), "pruned": self.pruned}

    async def apply(self, message: InboundMessage) -> None:
        """The effect of one valid message; ``Rejected`` when it can never take effect."""
        try:
            if isinstance(message.command, StockReplenished):
                await self._replenish(message.command, request_id_for(message.message_id))
            elif isinstance(message.command, ShipmentDelivered):
                await self._deliver(message.command)
        except DomainError as exc:
            if exc.status < 500:
                raise Rejected(f"{exc.code}: {exc.message}") from exc
            raise

    async def _replenish(self, command: StockReplenished, request_id: str) -> None:
        shard = self.directory.route(CATALOG, command.product_id)
        found = await shard.call(CatalogShardApi.get_products, [command.product_id])
        if command.product_id not in found:
            raise Rejected(f"unknown product {command.product_id}")
        partition = self.directory.route(INVENTORY, command.product_id)
        await partition.call(
            InventoryPartitionApi.adjust_stock, command.product_id, command.delta, request_id
        )

    async def _deliver(self, command: ShipmentDelivered) -> None:
        order_id = sibling_id(command.shipment_id, "ord")
        coordinator = self.directory.route(ORDERS, order_id)
        shipments = self.directory.route(SHIPMENTS, order_id)
        # Notices for one shipment may be handled concurrently (redeliveries, a second notice):
        # each takes the next step from what it reads, and a step another notice took first
        # (a Conflict) just means reading again.
        for _ in range(4):
            shipment = await shipments.call(ShipmentCoordinatorApi.get, order_id)
            if shipment is None:
                raise Rejected(f"unknown shipment {command.shipment_id}")
            if shipment.status is ShipmentStatus.DELIVERED:
                return
            if shipment.status is ShipmentStatus.CANCELLED:
                raise Rejected(f"shipment {command.shipment_id} was cancelled")
            step = (
                ShipmentStatus.SHIPPED
                if shipment.status is ShipmentStatus.PENDING
                else ShipmentStatus.DELIVERED
            )
            try:
                await coordinator.call(OrderCoordinatorApi.move_shipment, CARRIER, order_id, step)
            except Conflict:
                continue
        raise RuntimeError(f"shipment {command.shipment_id} kept moving; trying again later")


_ANSWERS: type[InboundConsumerApi] = InboundConsumer  # mypy checks the class against its protocol
InboundConsumerActor = ray.remote(InboundConsumer)
