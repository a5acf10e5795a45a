"""MarketplaceClient: the one typed async API over the actors.

The HTTP gateway, the simulator, the CLI and the notebooks all drive the marketplace through
this class. It routes each call to the owning actor and scatters/gathers where a query spans
shards. Authorization decisions take a ``Principal`` (who is asking).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from actors.catalog_reads import ReplicaReads
from actors.coalesce import Coalescer
from actors.directory import (
    CARTS,
    CATALOG,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    RELAY,
    SELLERS,
    SHIPMENTS,
    ActorKind,
    Directory,
)
from actors.product_reads import LeasedProducts
from actors.protocols import (
    ActorApi,
    CartShardApi,
    CatalogShardApi,
    EventRelayApi,
    InventoryPartitionApi,
    OrderCoordinatorApi,
    PaymentProcessorApi,
    SellerViewApi,
    ShipmentCoordinatorApi,
)
from actors.snapshots import live_snapshot
from marketplace.audit import AuditReport, audit, store_only
from marketplace.config import Durability
from marketplace.domain.cart import Cart, PricedCart
from marketplace.domain.catalog import (
    Product,
    ProductDraft,
    ProductPatch,
    check_limit,
    decode_cursor,
    encode_cursor,
    listing_fingerprint,
    merge_hits,
    write_fingerprint,
)
from marketplace.domain.errors import Forbidden, InvalidInput, NotFound
from marketplace.domain.ids import (
    is_id,
    new_id,
    owner_index,
    product_id_for,
    sibling_id,
    stock_request_id_for,
)
from marketplace.domain.inventory import StockItem
from marketplace.domain.orders import Order, PlaceOrder, parse_place_order
from marketplace.domain.payments import Payment
from marketplace.domain.sellers import Dashboard
from marketplace.domain.session_token import CatalogSession
from marketplace.domain.shipments import Shipment, ShipmentStatus
from marketplace.domain.users import Principal, Role, User
from marketplace.store.snapshot import load_audit_data
from marketplace.store.users import UserStore

A = TypeVar("A")
V = TypeVar("V")


class MarketplaceClient:
    """Async operations of the marketplace, as a buyer, seller, carrier or admin would call them."""

    def __init__(self, directory: Directory, engine: AsyncEngine) -> None:
        self.directory = directory
        self.engine = engine
        self.users = UserStore(engine)
        # Products read under the catalog's lease (actors.product_reads); stock reads coalesced
        # per owning actor (actors.coalesce).
        self._products = LeasedProducts(directory)
        # The gateway's product reads and searches, as the consistency setting asks
        # (actors.catalog_reads); none of it is used in strong consistency or without replicas.
        self._replicas = ReplicaReads(directory)
        self._stock_reads: dict[int, Coalescer[str, StockItem]] = {}

    def _reader(
        self,
        readers: dict[int, Coalescer[str, V]],
        kind: ActorKind[A],
        index: int,
        method: Callable[[A, list[str]], Awaitable[dict[str, V]]],
    ) -> Coalescer[str, V]:
        """The coalescer of ``method(ids)`` point reads on actor ``index`` of ``kind``."""
        reader = readers.get(index)
        if reader is None:

            async def fetch(ids: list[str]) -> dict[str, V]:
                return await self.directory.at(kind, index).call(method, ids)

            reader = readers[index] = Coalescer(fetch)
        return reader

    # -- users -------------------------------------------------------------------------------

    async def register(self, email: str, password: str, name: str, role: Role = Role.BUYER) -> User:
        """Create a user (Conflict if the email is taken)."""
        return await self.users.register(email, password, name, role)

    # -- catalog -----------------------------------------------------------------------------

    async def create_product(
        self,
        seller: Principal,
        draft: ProductDraft,
        initial_stock: int = 0,
        *,
        product_id: str | None = None,
        idempotency_key: str | None = None,
        session: CatalogSession | None = None,
    ) -> Product:
        """List a product and stock it (``session``, the caller's catalog session, is raised
        past the listing: see ``get_product``).

        With ``idempotency_key`` the product id is derived from (seller, key): a retry answers
        the product the first attempt made (and completes its initial stock), and the same key
        with another draft or stock is IdempotencyKeyReused. ``product_id`` is the older,
        caller-chosen way to make a retry idempotent (the seeder uses it); give one or the other.
        """
        if seller.role not in (Role.SELLER, Role.ADMIN):
            raise Forbidden("only sellers list products")
        if isinstance(initial_stock, bool) or not 0 <= initial_stock <= 1_000_000_000:
            raise InvalidInput("initial_stock must be 0 to 1,000,000,000", field="initial_stock")
        listing_key = None
        key = _checked_key(idempotency_key, product_id, "product_id")
        if key is not None:
            product_id = product_id_for(seller.id, key)
            listing_key = (key, listing_fingerprint(draft, initial_stock))
        product_id = product_id or new_id("prd")
        shard = self.directory.route(CATALOG, product_id)
        product = await shard.call(
            CatalogShardApi.create_product, product_id, seller.id, draft, listing_key
        )
        if initial_stock:
            partition = self.directory.route(INVENTORY, product_id)
            await partition.call(
                InventoryPartitionApi.adjust_stock,
                product_id,
                initial_stock,
                f"initial:{product_id}",
            )
        await self._replicas.written(product_id, session)
        return product

    async def get_product(
        self, product_id: str, *, session: CatalogSession | None = None
    ) -> Product:
        """A product by id (inactive ones too); NotFound otherwise.

        Without ``session`` the read is strong (the shard, or a leased copy). With one, it is
        as ``MARKETPLACE_CATALOG_CONSISTENCY`` says (``actors.catalog_reads``): a replica may
        answer, and in ``session`` consistency ``session`` is read and raised to what was seen.
        """
        _check_id(product_id, "prd", "product_id")
        if session is not None and self._replicas.enabled:
            product = await self._replicas.get(product_id, session)
        else:
            product = await self._products.get(product_id)
        if product is None:
            raise NotFound(f"product {product_id} not found", product_id=product_id)
        return product

    async def close(self) -> None:
        """Stop what this client runs in the background (its polls of the catalog shards)."""
        await self._products.close()

    def held_product(self, product_id: str) -> Product | None:
        """The product if this process holds a copy a gateway read may answer (no call, never
        waits): a leased copy; with replicas, in ``eventual`` a replica's copy still held, in
        ``session`` none (each read must check and raise its token)."""
        if self._replicas.enabled:
            return self._replicas.held(product_id)
        return self._products.held(product_id)

    def catalog_session(self, header: str | None) -> CatalogSession:
        """The catalog session a request's ``X-Catalog-Session`` carries (``actors.catalog_reads``;
        one the catalog did not issue counts as none)."""
        return CatalogSession.from_header(header, self.directory.count(CATALOG))

    async def get_products(self, product_ids: list[str]) -> dict[str, Product]:
        """The known products among ``product_ids``."""
        groups = self.directory.group(CATALOG, product_ids)
        parts = await asyncio.gather(
            *(
                self.directory.at(CATALOG, index).call(CatalogShardApi.get_products, ids)
                for index, ids in groups.items()
            )
        )
        return {pid: product for part in parts for pid, product in part.items()}

    async def search(
        self,
        query: str = "",
        *,
        category: str | None = None,
        seller_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        session: CatalogSession | None = None,
    ) -> tuple[list[Product], str | None]:
        """Scatter to every shard and merge the top ``limit``; returns (items, next_cursor).
        With ``session``, a replica of each shard may answer, as for ``get_product``."""
        check_limit(limit)
        if len(query) > 200:
            raise InvalidInput("q is at most 200 characters", field="q")
        after = decode_cursor(cursor) if cursor else None
        shards = range(self.directory.count(CATALOG))
        if session is not None and self._replicas.enabled:
            reads = self._replicas
            parts = await asyncio.gather(
                *(
                    reads.search_shard(index, session, query, category, seller_id, limit, after)
                    for index in shards
                )
            )
        else:
            # Searches made in the same loop turn share one call per shard (actors.batching).
            parts = await asyncio.gather(
                *(
                    self.directory.batched(CATALOG, index).call(
                        CatalogShardApi.search, query, category, seller_id, limit, after
                    )
                    for index in shards
                )
            )
        hits = merge_hits(parts, limit)
        next_cursor = encode_cursor(hits[-1].sort_key) if len(hits) == limit else None
        return [hit.product for hit in hits], next_cursor

    async def update_product(
        self,
        principal: Principal,
        product_id: str,
        patch: ProductPatch,
        *,
        if_version: tuple[int, ...] | None = None,
        idempotency_key: str | None = None,
        session: CatalogSession | None = None,
    ) -> Product:
        """Partial update by the owner (or an admin); with ``if_version``, only while the
        product is at one of those versions (``VersionMismatch`` otherwise: a lost update
        prevented).

        With ``idempotency_key`` the write is made once per key of this caller: a repeat
        answers the product as that write left it (same version), whatever ``if_version``
        says by then, and the key with another write (body, kind or product) raises
        ``IdempotencyKeyReused``. Updates, replacements and deactivations share the keys.
        In ``session`` consistency ``session`` is raised past the write (read-your-writes).
        """
        _check_id(product_id, "prd", "product_id")
        fields = patch.model_dump(exclude_none=True)
        write_key = _write_key(idempotency_key, product_id, "update", fields)
        shard = self.directory.route(CATALOG, product_id)
        product = await shard.call(
            CatalogShardApi.update_product, principal, product_id, patch, if_version, write_key
        )
        await self._replicas.written(product_id, session)
        return product

    async def replace_product(
        self,
        principal: Principal,
        product_id: str,
        draft: ProductDraft,
        *,
        if_version: tuple[int, ...] | None = None,
        idempotency_key: str | None = None,
        session: CatalogSession | None = None,
    ) -> Product:
        """Full replacement by the owner (or an admin); ``if_version`` and
        ``idempotency_key`` as for updates."""
        _check_id(product_id, "prd", "product_id")
        write_key = _write_key(idempotency_key, product_id, "replace", draft.model_dump())
        shard = self.directory.route(CATALOG, product_id)
        product = await shard.call(
            CatalogShardApi.replace_product, principal, product_id, draft, if_version, write_key
        )
        await self._replicas.written(product_id, session)
        return product

    async def deactivate_product(
        self,
        principal: Principal,
        product_id: str,
        *,
        if_version: tuple[int, ...] | None = None,
        idempotency_key: str | None = None,
        session: CatalogSession | None = None,
    ) -> Product:
        """Withdraw a product from sale; ``if_version`` and ``idempotency_key`` as for
        updates."""
        _check_id(product_id, "prd", "product_id")
        write_key = _write_key(idempotency_key, product_id, "deactivate", {})
        shard = self.directory.route(CATALOG, product_id)
        product = await shard.call(
            CatalogShardApi.deactivate_product, principal, product_id, if_version, write_key
        )
        await self._replicas.written(product_id, session)
        return product

    # -- stock -------------------------------------------------------------------------------

    async def get_stock(self, product_id: str) -> StockItem:
        """Stock of a product that exists."""
        await self.get_product(product_id)
        index = owner_index(product_id, self.directory.count(INVENTORY))
        reader = self._reader(self._stock_reads, INVENTORY, index, InventoryPartitionApi.get_stock)
        stock = await reader.get(product_id)
        if stock is None:  # a product always has a stock row; this is a broken store
            raise RuntimeError(f"no stock row for product {product_id}")
        return stock

    async def adjust_stock(
        self,
        principal: Principal,
        product_id: str,
        delta: int,
        *,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> StockItem:
        """Restock (delta > 0) or write off (delta < 0), by the owner or an admin.

        The change is applied once per ``request_id``, or once per ``idempotency_key`` of this
        caller for this product: a repeat answers the current stock, a repeat with another
        ``delta`` raises ``IdempotencyKeyReused``. Give one of the two, or neither.
        """
        _checked_key(idempotency_key, request_id, "request_id")
        product = await self.get_product(product_id)
        if not principal.is_admin and product.seller_id != principal.id:
            raise Forbidden("only the product's seller may change its stock")
        if request_id is None:
            request_id = (
                new_id("req")
                if idempotency_key is None
                else stock_request_id_for(principal.id, product_id, idempotency_key)
            )
        partition = self.directory.route(INVENTORY, product_id)
        return await partition.call(
            InventoryPartitionApi.adjust_stock, product_id, delta, request_id
        )

    # -- carts -------------------------------------------------------------------------------

    async def get_cart(self, buyer_id: str) -> PricedCart:
        """The buyer's cart, each line beside its product's current price, version and
        availability.

        The current products are read when the cart is (pull at read, no push from the
        catalog to the carts), in one call per catalog shard, through the same leased reads
        as ``get_product``: a cart read that starts after a product write was answered shows
        that write. A cart is never staler than a product read (strong, the default and only
        catalog mode here), and its ``current_total_cents`` is what a checkout of it would
        charge at that moment.
        """
        shard = self.directory.batched_route(CARTS, buyer_id)
        return await self._priced(await shard.call(CartShardApi.get_cart, buyer_id))

    async def set_cart_item(self, buyer_id: str, product_id: str, quantity: int) -> PricedCart:
        """Put ``quantity`` of a product in the cart (0 removes it), priced now; answers the
        cart as ``get_cart`` does."""
        _check_id(product_id, "prd", "product_id")
        product = None
        if quantity:
            product = await self.get_product(product_id)
        shard = self.directory.batched_route(CARTS, buyer_id)
        cart = await shard.call(CartShardApi.set_item, buyer_id, product_id, quantity, product)
        return await self._priced(cart, product)

    async def clear_cart(self, buyer_id: str) -> PricedCart:
        """Empty the cart."""
        shard = self.directory.batched_route(CARTS, buyer_id)
        return (await shard.call(CartShardApi.clear, buyer_id)).priced({})

    async def _priced(self, cart: Cart, just_read: Product | None = None) -> PricedCart:
        """``cart`` beside its products as they are now (``just_read``: one read a moment
        ago for this request, not read again)."""
        known = {} if just_read is None else {just_read.id: just_read}
        wanted = [item.product_id for item in cart.items if item.product_id not in known]
        if wanted:
            known.update(await self._products.get_many(wanted))
        return cart.priced(known)

    # -- orders ------------------------------------------------------------------------------

    async def place_order(
        self,
        buyer_id: str,
        idempotency_key: str,
        *,
        items: list[dict[str, Any]] | None = None,
        card_token: str = "tok_visa",
        shipping_address: dict[str, Any] | None = None,
        expected_total_cents: int | None = None,
    ) -> Order:
        """Check out ``items`` (or the cart when None) and run the saga to its end; with
        ``expected_total_cents``, only at that total (``PriceChanged`` otherwise)."""
        command = parse_place_order(
            {
                "buyer_id": buyer_id,
                "idempotency_key": idempotency_key,
                "lines": items,
                "card_token": card_token,
                "shipping_address": shipping_address or DEFAULT_ADDRESS,
                "expected_total_cents": expected_total_cents,
            }
        )
        return await self.submit(command)

    async def submit(self, command: PlaceOrder) -> Order:
        """Send an already validated checkout to its coordinator."""
        # Checkouts to one coordinator made in the same loop turn share one Ray call.
        coordinator = self.directory.batched_route(ORDERS, command.order_id())
        return await coordinator.call(OrderCoordinatorApi.place_order, command)

    async def get_order(self, principal: Principal, order_id: str) -> Order:
        """An order its buyer (or an admin) may see."""
        _check_id(order_id, "ord", "order_id")
        coordinator = self.directory.route(ORDERS, order_id)
        return await coordinator.call(OrderCoordinatorApi.get_order, principal, order_id)

    async def order_for_key(self, command: PlaceOrder) -> Order:
        """The order a checkout's Idempotency-Key stands for now (NotFound when none is
        recorded yet): the key's first order, or the newer one it placed after its window."""
        coordinator = self.directory.route(ORDERS, command.order_id())
        return await coordinator.call(
            OrderCoordinatorApi.order_for_key, command.buyer_id, command.order_id()
        )

    async def list_orders(
        self, buyer_id: str, *, limit: int | None = None, after: Order | None = None
    ) -> list[Order]:
        """A buyer's orders, newest first: at most ``limit`` (all without), only those older
        than ``after`` (the last order of the previous page). Each coordinator sends at most
        ``limit``; the pages are merged here."""
        before = None if after is None else (after.created_at, after.id)
        parts = await asyncio.gather(
            *(
                c.call(OrderCoordinatorApi.orders_of, buyer_id, limit, before)
                for c in self.directory.every(ORDERS)
            )
        )
        merged = heapq.merge(*parts, key=lambda order: (order.created_at, order.id), reverse=True)
        return list(merged if limit is None else itertools.islice(merged, limit))

    async def cancel_order(self, principal: Principal, order_id: str) -> Order:
        """Cancel before shipping: refund, restock."""
        _check_id(order_id, "ord", "order_id")
        coordinator = self.directory.route(ORDERS, order_id)
        return await coordinator.call(OrderCoordinatorApi.cancel_order, principal, order_id)

    async def get_payment(self, order_id: str) -> Payment | None:
        """The payment of an order (admin and tests)."""
        processor = self.directory.route(PAYMENTS, order_id)
        return await processor.call(PaymentProcessorApi.get, order_id)

    # -- shipments ---------------------------------------------------------------------------

    async def get_shipment(self, principal: Principal, order_id: str) -> Shipment:
        """The shipment of an order its buyer (or an admin or carrier) may see."""
        if principal.role is not Role.CARRIER:
            await self.get_order(principal, order_id)
        shipments = self.directory.route(SHIPMENTS, order_id)
        shipment = await shipments.call(ShipmentCoordinatorApi.get, order_id)
        if shipment is None:
            raise NotFound(f"order {order_id} has no shipment yet", order_id=order_id)
        return shipment

    async def move_shipment(
        self, principal: Principal, shipment_id: str, status: ShipmentStatus
    ) -> Shipment:
        """Mark a shipment shipped or delivered (carriers and admins)."""
        _check_id(shipment_id, "shp", "shipment_id")
        order_id = sibling_id(shipment_id, "ord")
        coordinator = self.directory.route(ORDERS, order_id)
        return await coordinator.call(
            OrderCoordinatorApi.move_shipment, principal, order_id, status
        )

    # -- sellers -----------------------------------------------------------------------------

    async def dashboard(self, seller_id: str) -> Dashboard:
        """A seller's dashboard."""
        view = self.directory.route(SELLERS, seller_id)
        return await view.call(SellerViewApi.dashboard, seller_id)

    # -- operations --------------------------------------------------------------------------

    async def ready(self) -> list[dict[str, Any]]:
        """Every actor's identity once it has loaded (raises if one is unreachable)."""
        return await asyncio.gather(
            *(actor.call(ActorApi.ready) for actor in self.directory.all_actors())
        )

    async def flush(self) -> None:
        """Wait until everything asked so far is committed: every actor's queued writes
        (``async`` durability) and the writes of pushes still on their way between actors."""
        actors = self.directory.all_actors()
        # A push not yet answered (an order snapshot to the seller view) is in no one's write
        # queue yet, so the senders settle before any queue is drained.
        await self.directory.settle()
        await asyncio.gather(*(actor.call(ActorApi.settle) for actor in actors))
        await asyncio.gather(*(actor.call(ActorApi.flush) for actor in actors))

    async def order_stats(self) -> dict[str, int]:
        """Counters summed over the coordinators."""
        parts = await asyncio.gather(
            *(c.call(OrderCoordinatorApi.stats) for c in self.directory.every(ORDERS))
        )
        total: dict[str, int] = {}
        for part in parts:
            for key, value in part.items():
                total[key] = total.get(key, 0) + value
        return total

    async def relay_stats(self) -> dict[str, Any] | None:
        """The event relay's lag, published and failed counts (None without a broker)."""
        if not self.directory.settings.amqp_url:
            return None
        return await self.directory.at(RELAY, 0).call(EventRelayApi.stats)

    async def audit(self, *, max_pending_age_s: float = 30.0) -> AuditReport:
        """Check invariants I1, I2, I3, I4 and I6 over the store and the live actors.

        Orders still pending younger than ``max_pending_age_s`` count as in flight, not stuck.
        """
        taken_at = datetime.now(UTC)
        await self.directory.every(SELLERS)[0].call(SellerViewApi.catch_up)
        live = await live_snapshot(self.directory, taken_at)
        if self.directory.settings.durability is Durability.NONE:
            return audit(live, max_pending_age_s=max_pending_age_s)
        await self.flush()
        settings = self.directory.settings
        stored = await load_audit_data(self.engine, taken_at, settings.outbox_retention_s)
        stored.dashboards = live.dashboards
        # Rows written after the live snapshot are in the store only; a second look tells
        # them from rows that no actor loaded.
        later = await live_snapshot(self.directory) if store_only(live, stored) else None
        return audit(stored, live=live, live_later=later, max_pending_age_s=max_pending_age_s)


DEFAULT_ADDRESS = {
    "name": "Ada Buyer",
    "street": "1 Market Street",
    "city": "Springfield",
    "zip": "12345",
    "country": "US",
}


def _check_id(value: str, prefix: str, field: str) -> None:
    if not is_id(value, prefix):
        raise InvalidInput(f"{field} {value!r} is not a valid id", field=field)


def _write_key(
    key: str | None, product_id: str, operation: str, fields: dict[str, Any]
) -> tuple[str, str] | None:
    """The (Idempotency-Key, fingerprint) a keyed product write carries to its shard."""
    checked = _checked_key(key, None, "")
    if checked is None:
        return None
    return checked, write_fingerprint(product_id, operation, fields)


def _checked_key(key: str | None, other: str | None, other_name: str) -> str | None:
    """An Idempotency-Key as the gateway accepts it (1 to 200 characters, not blank), given
    without ``other``, the caller-chosen id it would silently override."""
    if key is None:
        return None
    if not key.strip() or len(key) > 200:
        raise InvalidInput(
            "the Idempotency-Key must be 1 to 200 characters, not blank", field="Idempotency-Key"
        )
    if other is not None:
        raise InvalidInput(f"give an Idempotency-Key or a {other_name}, not both", field=other_name)
    return key
