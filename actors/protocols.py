"""What each kind of actor answers: one protocol per actor class, for the code that calls it.

Callers name a method through its protocol (``await ref.call(CatalogShardApi.get_products,
ids)``, see ``actors.remote``), so mypy checks the arguments and the result of every actor call,
and no call site spells a method name. Each actor module checks its class against its protocol,
so a changed signature fails mypy at the actor and at every caller. Callers import this module,
never the actor classes (the import-linter contracts in pyproject.toml keep it so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from actors.batching import Call
from marketplace.domain.cart import Cart
from marketplace.domain.catalog import Product, ProductDraft, ProductPatch, SearchHit, SortKey
from marketplace.domain.change_log import Change
from marketplace.domain.inventory import ReserveOutcome, StockItem
from marketplace.domain.orders import Order, OrderLine, PlaceOrder
from marketplace.domain.payments import Payment
from marketplace.domain.sellers import Dashboard
from marketplace.domain.shipments import Shipment, ShipmentStatus
from marketplace.domain.users import Principal
from marketplace.events.messages import InboundMessage


class ActorApi(Protocol):
    """What every actor answers (``actors.base.ActorBase``)."""

    async def ready(self) -> dict[str, Any]:
        """Wait for start-up loading; who and where the actor is."""
        ...

    async def inject_fault(self, fault_id: str, spec: dict[str, Any] | None) -> list[str]:
        """Start or lift an injected fault in the actor's process (``actors.faults``)."""
        ...

    async def run_batch(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        """Several calls in one Ray call (``actors.batching``)."""
        ...

    async def batch_counts(self) -> dict[str, tuple[int, int]]:
        """The batched calls this actor has made to others."""
        ...

    async def settle(self) -> None:
        """Wait until the calls this actor has sent so far are answered."""
        ...

    async def flush(self) -> None:
        """Wait until sent calls are answered and queued writes committed."""
        ...


class CatalogShardApi(ActorApi, Protocol):
    """``actors.catalog.CatalogShard``: the products of one catalog shard."""

    async def create_product(
        self,
        product_id: str,
        seller_id: str,
        draft: ProductDraft,
        listing_key: tuple[str, str] | None = None,
    ) -> Product:
        """List a product (idempotent per id)."""
        ...

    async def update_product(
        self,
        principal: Principal,
        product_id: str,
        patch: ProductPatch,
        if_version: tuple[int, ...] | None = None,
        write_key: tuple[str, str] | None = None,
    ) -> Product:
        """Partial update by the owner or an admin; with ``if_version``, only from one of
        those versions (else ``VersionMismatch``); ``write_key`` (the caller's Idempotency-Key
        and the write's fingerprint) makes it once per key: a repeat answers the product as
        that write left it, a repeat with another write ``IdempotencyKeyReused``."""
        ...

    async def replace_product(
        self,
        principal: Principal,
        product_id: str,
        draft: ProductDraft,
        if_version: tuple[int, ...] | None = None,
        write_key: tuple[str, str] | None = None,
    ) -> Product:
        """Full replacement by the owner or an admin (``if_version``, ``write_key`` as for
        updates)."""
        ...

    async def deactivate_product(
        self,
        principal: Principal,
        product_id: str,
        if_version: tuple[int, ...] | None = None,
        write_key: tuple[str, str] | None = None,
    ) -> Product:
        """Withdraw a product from sale (``if_version``, ``write_key`` as for updates)."""
        ...

    async def get_products(self, product_ids: list[str]) -> dict[str, Product]:
        """The known products among ``product_ids``."""
        ...

    async def lease_products(
        self, product_ids: list[str], lessee: str | None = None
    ) -> tuple[float, dict[str, Product]]:
        """The known products and how long a copy may be held (``actors.leases``); a
        ``lessee`` is told to drop its copies when they are written (``actors.lessees``)."""
        ...

    async def lease_outcomes(self) -> dict[str, int]:
        """How writes met the leases out: ``free``, ``acked``, ``waited`` (``actors.lessees``)."""
        ...

    async def next_invalidations(
        self, lessee: str, epoch: str, acked: int, wait_s: float
    ) -> tuple[str, int, list[str]]:
        """The products ``lessee`` must drop, ``(epoch, seq, ids)``, after acknowledging the
        ``seq`` of ``epoch`` it last applied; waits up to ``wait_s`` for some."""
        ...

    async def changes_since(
        self, seq: int, wait_s: float
    ) -> tuple[int, list[Change], list[Product] | None]:
        """What a replica at ``seq`` lacks: ``(seq_now, changes, None)``, waiting up to
        ``wait_s`` for a change, or ``(seq_now, [], every product)`` when it needs a snapshot."""
        ...

    async def products_at(self, product_ids: list[str]) -> tuple[int, dict[str, Product]]:
        """The known products among ``product_ids`` and the shard's change sequence number."""
        ...

    async def search(
        self,
        query: str,
        category: str | None,
        seller_id: str | None,
        limit: int,
        after: SortKey | None,
    ) -> list[SearchHit]:
        """This shard's best ``limit`` hits after ``after``."""
        ...

    async def snapshot(self) -> list[Product]:
        """Every product of the shard."""
        ...


class CatalogReplicaApi(ActorApi, Protocol):
    """``actors.catalog_replica.CatalogReplica``: a read replica of one catalog shard."""

    async def get_products(
        self, product_ids: list[str], min_seq: int, wait_s: float
    ) -> tuple[int, dict[str, Product]]:
        """The known products among ``product_ids`` and the shard sequence number applied,
        waiting up to ``wait_s`` for it to reach ``min_seq`` (answering anyway after)."""
        ...

    async def search(
        self,
        query: str,
        category: str | None,
        seller_id: str | None,
        limit: int,
        after: SortKey | None,
        min_seq: int,
        wait_s: float,
    ) -> tuple[int, list[SearchHit]]:
        """The shard's best ``limit`` hits as applied here, with the sequence number applied
        (``min_seq`` and ``wait_s`` as for ``get_products``)."""
        ...

    async def stats(self) -> dict[str, float]:
        """How far this replica is (``applied``, ``known``) and what it served stale."""
        ...


class InventoryPartitionApi(ActorApi, Protocol):
    """``actors.inventory.InventoryPartition``: stock and reservations of one partition."""

    async def adjust_stock(self, product_id: str, delta: int, request_id: str) -> StockItem:
        """Restock or write off, once per ``request_id``."""
        ...

    async def get_stock(self, product_ids: list[str]) -> dict[str, StockItem]:
        """Stock of the known products among ``product_ids``."""
        ...

    async def reserve(self, order_id: str, lines: list[tuple[str, int]]) -> ReserveOutcome:
        """Hold every line, or none."""
        ...

    async def commit(self, order_id: str) -> None:
        """Turn the order's held units into sold ones."""
        ...

    async def release(self, order_id: str, product_ids: list[str]) -> None:
        """Give back what the order holds or bought."""
        ...

    async def snapshot(self) -> dict[str, Any]:
        """Stock and reservations (audit)."""
        ...


class CartShardApi(ActorApi, Protocol):
    """``actors.carts.CartShard``: the carts of one shard."""

    async def get_cart(self, buyer_id: str) -> Cart:
        """The buyer's cart (empty if none)."""
        ...

    async def set_item(
        self, buyer_id: str, product_id: str, quantity: int, product: Product | None
    ) -> Cart:
        """Set a product's quantity (0 removes it)."""
        ...

    async def clear(self, buyer_id: str) -> Cart:
        """Empty the cart."""
        ...

    async def remove_lines(self, buyer_id: str, lines: list[OrderLine]) -> Cart:
        """Take checked-out quantities out of the cart."""
        ...


class PaymentProcessorApi(ActorApi, Protocol):
    """``actors.payments.PaymentProcessor``: the payments of one processor."""

    async def authorize(self, order_id: str, amount_cents: int, card_token: str) -> Payment:
        """Authorize the order's amount."""
        ...

    async def charge(self, order_id: str, amount_cents: int, card_token: str) -> Payment:
        """Authorize and capture."""
        ...

    async def capture(self, order_id: str) -> Payment:
        """Capture an authorized payment."""
        ...

    async def void(self, order_id: str) -> Payment | None:
        """Void an authorization."""
        ...

    async def refund(self, order_id: str) -> Payment | None:
        """Refund (or void) the order's payment."""
        ...

    async def cancel_charge(self, order_id: str) -> Payment:
        """Undo a charge whose answer never came."""
        ...

    async def get(self, order_id: str) -> Payment | None:
        """The order's payment, if any."""
        ...

    async def snapshot(self) -> list[Payment]:
        """Every payment of the processor (audit)."""
        ...


class ShipmentCoordinatorApi(ActorApi, Protocol):
    """``actors.shipments.ShipmentCoordinator``: the shipments of one coordinator."""

    async def open_shipment(self, order: Order) -> Shipment:
        """Open the shipment of a confirmed order (idempotent)."""
        ...

    async def move(self, order_id: str, status: ShipmentStatus) -> Shipment:
        """Move a shipment on."""
        ...

    async def get(self, order_id: str) -> Shipment | None:
        """The order's shipment, if one was opened."""
        ...

    async def snapshot(self) -> list[Shipment]:
        """Every shipment of the coordinator (audit)."""
        ...


class SellerViewApi(ActorApi, Protocol):
    """``actors.sellers.SellerView``: the sellers' dashboards."""

    async def apply(self, order: Order) -> int:
        """Count an order's newest snapshot."""
        ...

    async def catch_up(self) -> int:
        """Apply every order the view has not seen."""
        ...

    async def dashboard(self, seller_id: str) -> Dashboard:
        """A seller's figures."""
        ...

    async def snapshot(self) -> dict[str, Any]:
        """Dashboards and facts (audit)."""
        ...


class OrderCoordinatorApi(ActorApi, Protocol):
    """``actors.orders.OrderCoordinator``: the orders and sagas of one coordinator."""

    async def place_order(self, command: PlaceOrder) -> Order:
        """Check out and run the saga to its end."""
        ...

    async def cancel_order(self, principal: Principal, order_id: str) -> Order:
        """Cancel before shipping."""
        ...

    async def move_shipment(
        self, principal: Principal, order_id: str, status: ShipmentStatus
    ) -> Shipment:
        """Mark the order's shipment shipped or delivered."""
        ...

    async def get_order(self, principal: Principal, order_id: str) -> Order:
        """One order the principal may see."""
        ...

    async def order_for_key(self, buyer_id: str, key_id: str) -> Order:
        """The order a buyer's Idempotency-Key stands for inside its window (``key_id``:
        ``PlaceOrder.order_id``); NotFound when none."""
        ...

    async def orders_of(
        self,
        buyer_id: str,
        limit: int | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[Order]:
        """A buyer's orders held by this coordinator, newest first (at most ``limit``, those
        whose ``(created_at, id)`` comes before ``before``)."""
        ...

    async def snapshot(self) -> list[Order]:
        """Every order of the coordinator (audit)."""
        ...

    async def stats(self) -> dict[str, int]:
        """Counters: outcomes, failure reasons, compensations."""
        ...


class EventRelayApi(ActorApi, Protocol):
    """``actors.relay.EventRelay``: the outbox to RabbitMQ relay."""

    async def stats(self) -> dict[str, Any]:
        """Lag, published, failed, connected."""
        ...


class InboundConsumerApi(ActorApi, Protocol):
    """``actors.inbound.InboundConsumer``: the inbound queue's consumer."""

    async def stats(self) -> dict[str, Any]:
        """Received, processed, duplicates, retried, dead-lettered, connected."""
        ...

    async def apply(self, message: InboundMessage) -> None:
        """The effect of one valid message."""
        ...
