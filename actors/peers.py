"""What an order coordinator asks of the other actors, as typed calls.

``OrderPeers`` is the coordinator's whole view of the rest of the marketplace; ``DirectoryPeers``
is the real one (calls through the directory, batched where the saga sends many). A test passes
fakes with the same methods, so the saga runs in-process without Ray (tests/unit/test_saga.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from actors.batching import CallBatcher
from actors.directory import (
    CARTS,
    INVENTORY,
    PAYMENTS,
    SELLERS,
    SHIPMENTS,
    ActorKind,
    Directory,
)
from actors.product_reads import LeasedProducts
from actors.protocols import (
    CartShardApi,
    InventoryPartitionApi,
    PaymentProcessorApi,
    SellerViewApi,
    ShipmentCoordinatorApi,
)
from marketplace.domain.cart import Cart
from marketplace.domain.catalog import Product
from marketplace.domain.inventory import ReserveOutcome
from marketplace.domain.orders import Order, OrderLine
from marketplace.domain.payments import Payment
from marketplace.domain.shipments import Shipment, ShipmentStatus

A = TypeVar("A")


class OrderPeers(Protocol):
    """The calls an order coordinator makes. Stock calls name the inventory partition that
    owns the lines (``partitions``), so one call carries all of an order's lines there."""

    async def resolve(self) -> None:
        """Be ready to call every peer (look up handles, off the event loop)."""

    def partitions(self, product_ids: list[str]) -> dict[int, list[str]]:
        """``product_ids`` grouped by the index of the inventory partition that owns them."""

    def products(self, product_ids: list[str]) -> Awaitable[dict[str, Product]]:
        """The known products among ``product_ids`` (inactive ones too)."""

    def get_cart(self, buyer_id: str) -> Awaitable[Cart]:
        """The buyer's cart."""

    def remove_cart_lines(self, buyer_id: str, lines: list[OrderLine]) -> None:
        """Take checked-out lines out of the buyer's cart, without waiting."""

    def reserve(
        self, partition: int, order_id: str, lines: list[tuple[str, int]]
    ) -> Awaitable[ReserveOutcome]:
        """Hold every line in ``partition``, or none."""

    def commit(self, partition: int, order_id: str) -> Awaitable[None]:
        """Turn the order's held units in ``partition`` into sold ones."""

    def release(self, partition: int, order_id: str, product_ids: list[str]) -> Awaitable[None]:
        """Give back what the order holds or bought in ``partition``."""

    def charge(self, order_id: str, amount_cents: int, card_token: str) -> Awaitable[Payment]:
        """Authorize and capture the order's payment."""

    def refund(self, order_id: str) -> Awaitable[Payment | None]:
        """Refund (or void) the order's payment."""

    def cancel_charge(self, order_id: str) -> Awaitable[Payment]:
        """Undo a charge whose answer never came."""

    def open_shipment(self, order: Order) -> Awaitable[Shipment]:
        """Open the shipment of a confirmed order."""

    def move_shipment(self, order_id: str, status: ShipmentStatus) -> Awaitable[Shipment]:
        """Move the order's shipment on."""

    def order_changed(self, order: Order) -> None:
        """Tell the seller view about the order's new state, without waiting."""


class DirectoryPeers:
    """``OrderPeers`` through the directory: the saga's steps in batches, one per actor."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._products = LeasedProducts(directory)

    async def resolve(self) -> None:
        """Look every handle up, off the event loop."""
        await self.directory.aresolve_all()

    def partitions(self, product_ids: list[str]) -> dict[int, list[str]]:
        """``product_ids`` grouped by the index of their inventory partition."""
        return self.directory.group(INVENTORY, product_ids)

    def products(self, product_ids: list[str]) -> Awaitable[dict[str, Product]]:
        """Under the catalog's lease: a checkout that starts after a reprice was answered is
        priced at the new price, as a call to the shard would price it (actors.leases)."""
        return self._products.get_many(product_ids)

    def get_cart(self, buyer_id: str) -> Awaitable[Cart]:
        """The buyer's cart, from its shard."""
        return self._batched(CARTS, buyer_id).call(CartShardApi.get_cart, buyer_id)

    def remove_cart_lines(self, buyer_id: str, lines: list[OrderLine]) -> None:
        """Tell the buyer's cart shard to drop the lines."""
        self._batched(CARTS, buyer_id).tell(CartShardApi.remove_lines, buyer_id, lines)

    def reserve(
        self, partition: int, order_id: str, lines: list[tuple[str, int]]
    ) -> Awaitable[ReserveOutcome]:
        """Reserve in one partition."""
        return self.directory.batched(INVENTORY, partition).call(
            InventoryPartitionApi.reserve, order_id, lines
        )

    def commit(self, partition: int, order_id: str) -> Awaitable[None]:
        """Commit in one partition."""
        return self.directory.batched(INVENTORY, partition).call(
            InventoryPartitionApi.commit, order_id
        )

    def release(self, partition: int, order_id: str, product_ids: list[str]) -> Awaitable[None]:
        """Release in one partition."""
        batcher = self.directory.batched(INVENTORY, partition)
        return batcher.call(InventoryPartitionApi.release, order_id, product_ids)

    def charge(self, order_id: str, amount_cents: int, card_token: str) -> Awaitable[Payment]:
        """Charge through the order's payment processor."""
        batcher = self._batched(PAYMENTS, order_id)
        return batcher.call(PaymentProcessorApi.charge, order_id, amount_cents, card_token)

    def refund(self, order_id: str) -> Awaitable[Payment | None]:
        """Refund through the order's payment processor."""
        return self._batched(PAYMENTS, order_id).call(PaymentProcessorApi.refund, order_id)

    def cancel_charge(self, order_id: str) -> Awaitable[Payment]:
        """Cancel the charge through the order's payment processor."""
        return self._batched(PAYMENTS, order_id).call(PaymentProcessorApi.cancel_charge, order_id)

    def open_shipment(self, order: Order) -> Awaitable[Shipment]:
        """Open the shipment at the order's shipment coordinator."""
        return self._batched(SHIPMENTS, order.id).call(ShipmentCoordinatorApi.open_shipment, order)

    def move_shipment(self, order_id: str, status: ShipmentStatus) -> Awaitable[Shipment]:
        """Move the shipment at the order's shipment coordinator (an unbatched call)."""
        shipments = self.directory.route(SHIPMENTS, order_id)
        return shipments.call(ShipmentCoordinatorApi.move, order_id, status)

    def order_changed(self, order: Order) -> None:
        """Push the order's snapshot to the seller view."""
        self._batched(SELLERS, order.id).tell(SellerViewApi.apply, order)

    def _batched(self, kind: ActorKind[A], key: str) -> CallBatcher[A]:
        return self.directory.batched_route(kind, key)
