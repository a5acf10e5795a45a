"""OrderCoordinator: the checkout saga of DESIGN.md section 2, one order at a time per order id.

Every step is idempotent, so the saga can always be run again from the top: on a repeated
request, and when a restarted coordinator resumes the orders it left unfinished. Two intents
are persisted before compensating (``failure_reason`` set on a pending order, or on a confirmed
one being cancelled), so a resumed saga compensates instead of going forward.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import ray
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from actors.base import ActorBase
from actors.calls import call_until_done
from actors.directory import Directory
from actors.key_sweeps import KeySweeps, in_window
from actors.order_memory import OrderMemory, needs_saga
from actors.peers import DirectoryPeers, OrderPeers
from actors.protocols import OrderCoordinatorApi
from marketplace import tracing
from marketplace.domain.catalog import Product
from marketplace.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PriceChanged,
    TransientFailure,
)
from marketplace.domain.ids import owner_index, renewed_order_id
from marketplace.domain.inventory import ReserveOutcome
from marketplace.domain.orders import (
    FailureReason,
    Order,
    OrderItem,
    OrderLine,
    OrderStatus,
    PlaceOrder,
    check_lines,
    order_event,
)
from marketplace.domain.payments import Payment, PaymentStatus
from marketplace.domain.shipments import Shipment, ShipmentStatus
from marketplace.domain.users import Principal, Role
from marketplace.store import orders as store
from marketplace.store.rows import utcnow
from marketplace.store.writer import Writer

log = logging.getLogger(__name__)
T = TypeVar("T")

_ORDER_STATUS_FOR_SHIPMENT = {
    ShipmentStatus.SHIPPED: OrderStatus.SHIPPED,
    ShipmentStatus.DELIVERED: OrderStatus.DELIVERED,
}
AUTHORIZE_ATTEMPTS = 4


class OrderCoordinator(ActorBase):
    """Owns orders by ``stable_hash(order_id) % coordinators``."""

    SOURCE = "marketplace/orders"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        peers: OrderPeers | None = None,
        writer: Writer | None = None,
    ) -> None:
        """``peers`` and ``writer`` default to the real ones (the directory's actors, a writer
        per the settings); a test passes fakes."""
        # Idempotency-Keys inside their window, by the key's home id (``PlaceOrder.order_id``,
        # where every replay of the key is routed): older ones are forgotten (``_key_use``).
        self.keys: dict[str, store.KeyUse] = {}
        self._sweeps = KeySweeps("idempotency keys")
        # A buyer's order ids, for ``orders_of`` when the store may lag memory (not kept when
        # it does not: ``store_first``).
        self.by_buyer: dict[str, list[str]] = {}
        self.counters: Counter[str] = Counter()
        # Every order owned here by status, whether memory holds it or not: kept as orders
        # change, so that publishing the figures every few seconds walks none.
        self.by_status: Counter[OrderStatus] = Counter()
        self._resumes: set[asyncio.Task[Any]] = set()
        super().__init__(settings, index, count, writer=writer)
        # With the store first, memory keeps the orders with work left and a bounded cache of
        # the others; otherwise it keeps every order.
        self.orders = OrderMemory(self.settings.order_cache_size if self.store_first else None)
        # Whether load() read every order owned here (see _taken).
        self._loaded_all = True
        if peers is None:
            self.directory: Directory | None = Directory(self.settings)
            peers = DirectoryPeers(self.directory)
        else:
            self.directory = None
        self.peers: OrderPeers = peers

    async def load(self) -> None:
        """The orders with work left (every order, unless they are all in the store), the
        keys inside their window, and the count of orders by status."""
        open_only = False
        if self.store_first:
            counts = await store.status_counts(self.database, self.index, self.count)
            # Every order when the cache can hold them all: memory then knows every order,
            # and a checkout need not ask the store whether its new order's id is taken.
            open_only = sum(counts.values()) > (self.orders.cache_size or 0)
        loaded, keys = await store.load_owned(
            self.database,
            self.index,
            self.count,
            utcnow() - self._key_ttl,
            open_only=open_only,
        )
        self._loaded_all = not open_only
        if not self.store_first:
            counts = Counter(order.status for order in loaded)
            for order in loaded:
                self.by_buyer.setdefault(order.buyer_id, []).append(order.id)
        # Filled only here, after every read: a load retried after an outage starts afresh.
        self.orders = OrderMemory(self.orders.cache_size)
        for order in loaded:
            self.orders.put(order)
        self.by_status = counts
        self.keys.update(keys)

    async def started(self) -> None:
        await self.peers.resolve()
        for order in self.orders.with_work():
            task = asyncio.get_running_loop().create_task(self._resume(order.id))
            self._resumes.add(task)
            task.add_done_callback(self._resumes.discard)

    # -- commands ----------------------------------------------------------------------------

    async def place_order(self, command: PlaceOrder) -> Order:
        """Check out; the same idempotency key with the same body returns the same order."""
        await self.loaded()
        self._sweep_now_and_then()
        key_id = command.order_id()
        tracing.annotate(**{tracing.ORDER_ID: key_id})
        fingerprint = command.fingerprint()
        async with self.locks.hold(key_id):
            use = self._key_use(key_id)
            if use is not None:
                if use.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used with a different request",
                        order_id=use.order_id,
                    )
                self.counters["replayed"] += 1
                tracing.annotate(**{tracing.ORDER_ID: use.order_id})
                existing = await self._lookup(use.order_id)
                if existing is None:
                    # Another coordinator owns the order (the count of coordinators changed
                    # since the key was used): answer the stored order, which its owner runs.
                    stored, _ = await store.load_stored(self.database, use.order_id)
                    if stored is None:
                        raise NotFound(f"order {use.order_id} not found", order_id=use.order_id)
                    return stored
                return await self._saga(existing) if needs_saga(existing) else existing
            from_cart = command.lines is None
            shown: dict[str, int] | None = None
            if command.lines is None:
                lines, shown = await self._cart_lines(command)
            else:
                lines = command.lines
            order = await self._new_order(
                await self._fresh_order_id(command, key_id), command, lines, shown
            )
            if order.id != key_id:  # a key used again after its window: a renewed order
                tracing.annotate(**{tracing.ORDER_ID: order.id})
            expected = command.expected_total_cents
            if expected is not None and order.total_cents != expected:
                # Before anything is written: the buyer decides again at the new prices.
                raise PriceChanged(
                    f"the total is now {order.total_cents} cents, not {expected}",
                    total_cents=order.total_cents,
                    expected_total_cents=expected,
                    items=[item.model_dump() for item in order.items],
                )
            try:
                await self._insert(key_id, order, command, fingerprint)
            except store.AlreadyStored:
                # An earlier attempt's insert committed, but its answer was lost with the
                # connection (a database restart): the store has an order this coordinator
                # does not. Take it up from there instead of refusing the retry.
                stored = await self._stored_order(key_id, order.id, fingerprint)
                if stored is None:
                    raise
                order = stored
            order = await self._saga(order)
        if from_cart and order.status is OrderStatus.CONFIRMED:
            self.peers.remove_cart_lines(command.buyer_id, list(lines))
        return order

    async def cancel_order(self, principal: Principal, order_id: str) -> Order:
        """Cancel an order that has not shipped: refund, restock, cancel its shipment."""
        await self.loaded()
        tracing.annotate(**{tracing.ORDER_ID: order_id})
        async with self.locks.hold(order_id):
            order = await self._visible(principal, order_id)
            if needs_saga(order):
                order = await self._saga(order)
            if order.status is OrderStatus.CANCELLED:
                return order
            if order.status is not OrderStatus.CONFIRMED:
                raise Conflict(
                    f"order {order_id} is {order.status.value}; it can no longer be cancelled",
                    order_id=order_id,
                )
            await self.peers.move_shipment(order_id, ShipmentStatus.CANCELLED)
            order = await self._save(order, failure_reason=FailureReason.CANCELLED_BY_BUYER)
            return await self._saga(order)

    async def move_shipment(
        self, principal: Principal, order_id: str, status: ShipmentStatus
    ) -> Shipment:
        """Mark an order's shipment shipped or delivered (carrier or admin)."""
        await self.loaded()
        if principal.role not in (Role.CARRIER, Role.ADMIN):
            from marketplace.domain.errors import Forbidden

            raise Forbidden("only carriers and admins move shipments")
        target = _ORDER_STATUS_FOR_SHIPMENT.get(status)
        if target is None:
            raise InvalidInput("status must be shipped or delivered", field="status")
        async with self.locks.hold(order_id):
            order = await self._lookup(order_id)
            if order is None:
                raise NotFound(f"no shipment for order {order_id}")
            if order.status is not target:
                # Orders are frozen: this checks the move on a copy (Conflict when the state
                # machine forbids it) before the shipment moves. Memory changes only in
                # _save, after the new status is stored, so a failed move or save leaves the
                # order as it was and a retry goes through the same steps.
                order.transition(target, utcnow())
            shipment = await self.peers.move_shipment(order_id, status)
            if order.status is not target:
                await self._save(order, status=target)
            return shipment

    # -- queries -----------------------------------------------------------------------------

    async def get_order(self, principal: Principal, order_id: str) -> Order:
        """One order; another buyer's order is not found."""
        await self.loaded()
        return await self._visible(principal, order_id)

    async def order_for_key(self, buyer_id: str, key_id: str) -> Order:
        """The order a buyer's Idempotency-Key stands for while inside its window (after it,
        the key may have placed a newer order, whose id is not ``key_id``); NotFound when
        none is recorded here."""
        await self.loaded()
        use = self._key_use(key_id)
        order = None if use is None else await self._lookup(use.order_id)
        if order is None or order.buyer_id != buyer_id:
            raise NotFound(f"no order for this Idempotency-Key yet ({key_id})", order_id=key_id)
        return order

    async def orders_of(
        self,
        buyer_id: str,
        limit: int | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[Order]:
        """One buyer's orders held here, newest first: at most ``limit`` (all without), only
        those whose ``(created_at, id)`` comes before ``before`` (a page's cursor), so a page
        sends ``limit`` orders over Ray, not every order the buyer ever placed."""
        await self.loaded()
        if self.store_first:
            # Every order here is committed before it is remembered: the store's page is
            # this coordinator's, read on an index instead of walked in memory.
            return await store.buyer_page(
                self.database, buyer_id, self.index, self.count, limit, before
            )
        # Memory holds every order here (``store_first`` is false).
        held = (self.orders.get(oid) for oid in self.by_buyer.get(buyer_id, []))
        mine = (order for order in held if order is not None)
        if before is not None:
            mine = (order for order in mine if (order.created_at, order.id) < before)
        if limit:
            return heapq.nlargest(limit, mine, key=_created)
        return sorted(mine, key=_created, reverse=True)

    async def snapshot(self) -> list[Order]:
        """Every order of this coordinator (audit): as memory holds it, and, for those memory
        does not hold (``store_first``), as the store does, which is how ``get_order`` would
        answer them."""
        await self.loaded()
        held = {order.id: order for order in self.orders.values()}
        if not self.store_first:
            return list(held.values())
        async with self.database.connect() as conn:
            stored = await store.owned_orders(conn, self.index, self.count)
        return [*held.values(), *(order for order in stored if order.id not in held)]

    async def stats(self) -> dict[str, int]:
        """Counters for metrics: outcomes, failure reasons, compensations, orders by status,
        and how many orders memory holds (``orders_held``) and read again (``store_reads``)."""
        await self.loaded()
        # Every status, zeros included: a gauge left at its last non-zero value would lie.
        by_status = {f"status_{status.value}": self.by_status[status] for status in OrderStatus}
        return {**by_status, **self.counters, "orders_held": len(self.orders)}

    async def publish_gauges(self) -> None:
        """This coordinator's ``stats``, as the ``marketplace_order_counters`` gauges."""
        self.metrics.order_counters(await self.stats())

    # -- the saga ----------------------------------------------------------------------------

    async def _saga(self, order: Order) -> Order:
        if order.status is OrderStatus.PENDING and order.failure_reason is None:
            reason = await self._forward(order)
            if reason is None:
                self.counters["confirmed"] += 1
                return await self._save(order, status=OrderStatus.CONFIRMED)
            order = await self._save(order, failure_reason=reason)
        if order.failure_reason is not None and order.status in (
            OrderStatus.PENDING,
            OrderStatus.CONFIRMED,
        ):
            await self._compensate(order)
            self.counters[f"cancelled_{order.failure_reason}"] += 1
            return await self._save(
                order, status=OrderStatus.CANCELLED, failure_reason=order.failure_reason
            )
        return order

    async def _forward(self, order: Order) -> str | None:
        """Reserve, charge, then commit and open the shipment. Returns why it failed, or None."""
        timeout = self.settings.saga_step_timeout_s
        groups = self._lines_by_partition(order)

        def reserve() -> Awaitable[list[ReserveOutcome]]:
            calls = [self.peers.reserve(index, order.id, lines) for index, lines in groups.items()]
            return asyncio.wait_for(asyncio.gather(*calls), timeout)

        try:
            outcomes = await self._step("reserve", reserve)
        except Exception as exc:
            log.warning("reserving stock for %s failed: %r", order.id, exc)
            return "inventory_unavailable"
        if any(outcome is not ReserveOutcome.RESERVED for outcome in outcomes):
            return FailureReason.OUT_OF_STOCK

        # Authorize and capture in one call. A charge whose answer never comes ends the order
        # as payment_failed, and the compensation cancels it (PaymentProcessor.cancel_charge).
        try:
            payment: Payment | None = None
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TransientFailure),
                stop=stop_after_attempt(AUTHORIZE_ATTEMPTS),
                wait=wait_exponential(multiplier=0.02, max=0.5),
                reraise=True,
            ):
                with attempt:
                    payment = await self._step(
                        "charge",
                        lambda: asyncio.wait_for(
                            self.peers.charge(order.id, order.total_cents, order.card_token),
                            timeout,
                        ),
                    )
        except Exception as exc:
            log.warning("charging the payment of %s failed: %r", order.id, exc)
            return FailureReason.PAYMENT_FAILED
        assert payment is not None
        if payment.status is PaymentStatus.DECLINED:
            return FailureReason.PAYMENT_DECLINED
        if payment.status is not PaymentStatus.CAPTURED:
            return FailureReason.PAYMENT_FAILED

        # Past this point the order goes through: commit and the shipment must not give up.
        # They do not depend on each other, so they run together.
        await asyncio.gather(
            self._step(
                "commit",
                lambda: asyncio.gather(
                    *(
                        call_until_done(
                            partial(self.peers.commit, index, order.id), "commit reservation"
                        )
                        for index in groups
                    )
                ),
            ),
            self._step(
                "ship",
                lambda: call_until_done(partial(self.peers.open_shipment, order), "open shipment"),
            ),
        )
        return None

    async def _step(self, step: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run a saga step, timing it (whether it succeeds or fails). ``work`` starts the
        step's calls inside the step's span, so that they are its children in a trace."""
        started = time.perf_counter()
        try:
            with tracing.step(f"saga.{step}"):
                return await work()
        finally:
            self.metrics.saga_step(step, time.perf_counter() - started)

    async def _compensate(self, order: Order) -> None:
        """Undo what the order may hold: its reservations (or sold units) and its payment."""
        with tracing.step("saga.compensate", reason=str(order.failure_reason)):
            await self._undo(order)

    async def _undo(self, order: Order) -> None:
        self.counters["compensations"] += 1
        self.metrics.compensated(str(order.failure_reason))
        releases: list[Any] = [
            call_until_done(
                partial(self.peers.release, index, order.id, [pid for pid, _ in lines]),
                "release reservation",
            )
            for index, lines in self._lines_by_partition(order).items()
        ]
        # A charge that failed without an answer may still be on its way: cancel it, which
        # also leaves a void behind for it to find. Any other failure came before the charge,
        # or after its answer, and a plain refund undoes whatever it holds.
        undo: Awaitable[Payment | None]
        if order.failure_reason == FailureReason.PAYMENT_FAILED:
            undo = call_until_done(partial(self.peers.cancel_charge, order.id), "cancel_charge")
        else:
            undo = call_until_done(partial(self.peers.refund, order.id), "refund")
        await asyncio.gather(*releases, undo)

    async def _resume(self, order_id: str) -> None:
        try:
            async with self.locks.hold(order_id):
                # Gone from memory: a request finished its saga first, and it was let go.
                order = self.orders.get(order_id)
                if order is not None and needs_saga(order):
                    log.info("resuming saga of %s (%s)", order_id, order.status.value)
                    self.counters["resumed"] += 1
                    await self._saga(order)
        except Exception:
            log.exception("resuming %s failed", order_id)

    async def _stored_order(self, key_id: str, order_id: str, fingerprint: str) -> Order | None:
        """The order a lost insert committed, now remembered here (None when the store has
        none: the conflict was something else)."""
        stored, stored_fingerprint = await store.load_stored(self.database, order_id)
        if stored is None:
            return None
        if stored_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request", order_id=order_id
            )
        self.keys[key_id] = store.KeyUse(order_id, fingerprint, stored.created_at)
        # Not counted yet: the insert's answer was lost (a coordinator started after the
        # commit would have counted it, but also loaded its key, and replayed it instead).
        self._remember(stored, None)
        return stored

    # -- Idempotency-Keys' window ------------------------------------------------------------

    @property
    def _key_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.idempotency_ttl_s)

    def _key_use(self, key_id: str) -> store.KeyUse | None:
        """What the key stands for while inside its window; None (and forgotten) after it."""
        use: store.KeyUse | None = in_window(self.keys, key_id, utcnow() - self._key_ttl)
        return use

    async def _fresh_order_id(self, command: PlaceOrder, key_id: str) -> str:
        """The id of a new order for the key: its home id the first time; when the key comes
        back after its window, the first renewal id that is owned here (so the order lives
        where the key's replays are routed) and not taken by an earlier order."""
        if not await self._taken(key_id):
            return key_id
        for renewal in itertools.count(1):
            candidate = renewed_order_id(command.buyer_id, command.idempotency_key, renewal)
            if owner_index(candidate, self.count) == self.index and not await self._taken(
                candidate
            ):
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    async def _taken(self, order_id: str) -> bool:
        """Whether an earlier order has the id: memory's, or one memory let go of."""
        if order_id in self.orders:
            return True
        if not self.store_first or (self._loaded_all and self.orders.settled.dropped == 0):
            # Memory holds every order this coordinator placed or loaded (an insert whose
            # answer was lost is met as AlreadyStored in place_order).
            return False
        return await store.taken(self.database, order_id, utcnow() - self._key_ttl)

    def _sweep_now_and_then(self) -> None:
        """Forget the keys past their window; coordinator 0 prunes their rows for all."""
        first = self.index == 0 and self.engine is not None
        self._sweeps.now_and_then(
            self.keys,
            utcnow() - self._key_ttl,
            self.settings.retention_interval_s,
            self._prune_keys if first else None,
        )

    async def _prune_keys(self, cutoff: datetime) -> None:
        self.counters["keys_pruned"] += await store.prune_keys(self.database, cutoff)

    # -- building and saving -----------------------------------------------------------------

    async def _cart_lines(
        self, command: PlaceOrder
    ) -> tuple[tuple[OrderLine, ...], dict[str, int]]:
        """The cart's lines, and the price each line holds (the one the buyer was shown)."""
        cart = await self.peers.get_cart(command.buyer_id)
        lines: tuple[OrderLine, ...] = cart.lines()
        if not lines:
            raise InvalidInput("the cart is empty", field="items")
        return lines, cart.shown_prices()

    async def _new_order(
        self,
        order_id: str,
        command: PlaceOrder,
        lines: tuple[OrderLine, ...],
        shown: dict[str, int] | None = None,
    ) -> Order:
        """A pending order of ``lines`` at the catalog's current prices; ``shown`` (a cart
        checkout's) are the prices the buyer's cart held, recorded beside them."""
        check_lines(lines)
        products = await self._products([line.product_id for line in lines])
        unknown = [line.product_id for line in lines if line.product_id not in products]
        if unknown:
            raise NotFound(f"unknown product {unknown[0]}", product_ids=unknown)
        items = tuple(
            OrderItem(
                product_id=line.product_id,
                seller_id=products[line.product_id].seller_id,
                quantity=line.quantity,
                unit_price_cents=products[line.product_id].price_cents,
                product_version=products[line.product_id].version,
                shown_unit_price_cents=None if shown is None else shown.get(line.product_id),
            )
            for line in lines
        )
        now = utcnow()
        unavailable = any(not products[line.product_id].active for line in lines)
        return Order(
            id=order_id,
            buyer_id=command.buyer_id,
            status=OrderStatus.PENDING,
            failure_reason=FailureReason.PRODUCT_UNAVAILABLE if unavailable else None,
            items=items,
            total_cents=sum(item.subtotal_cents for item in items),
            created_at=now,
            updated_at=now,
            card_token=command.card_token,
            shipping_address=command.shipping_address,
        )

    async def _products(self, product_ids: list[str]) -> dict[str, Product]:
        # Under the catalog's lease: a checkout that starts after a reprice was answered is
        # priced at the new price, as a call to the shard would price it (actors.leases).
        return await self.peers.products(product_ids)

    def _lines_by_partition(self, order: Order) -> dict[int, list[tuple[str, int]]]:
        quantities = {item.product_id: item.quantity for item in order.items}
        groups = self.peers.partitions(list(quantities))
        return {
            index: [(pid, quantities[pid]) for pid in sorted(pids)]
            for index, pids in groups.items()
        }

    async def _visible(self, principal: Principal, order_id: str) -> Order:
        order = await self._lookup(order_id)
        if order is None or (not principal.is_admin and order.buyer_id != principal.id):
            raise NotFound(f"order {order_id} not found", order_id=order_id)
        return order

    async def _lookup(self, order_id: str) -> Order | None:
        """An order owned here: from memory, or, for one memory let go of, from the store
        (then cached). None for an order not owned here, as before memory was bounded."""
        order = self.orders.get(order_id)
        if (
            order is not None
            or not self.store_first
            or owner_index(order_id, self.count) != self.index
        ):
            return order
        self.counters["store_reads"] += 1
        self.orders.start_read(order_id)
        found: Order | None = None
        try:
            found, _ = await store.load_stored(self.database, order_id)
        finally:
            order = self.orders.end_read(order_id, found)
        return order

    def _remember(self, order: Order, before: Order | None) -> None:
        """Hold ``order``, just stored, and count it in its status instead of in the status of
        ``before``, what it was (None: an order not counted yet, a new one). ``before`` comes
        from the caller, not from memory, which may have let the order go meanwhile."""
        if before is None:
            if not self.store_first:
                self.by_buyer.setdefault(order.buyer_id, []).append(order.id)
        else:
            self.by_status[before.status] -= 1
        self.by_status[order.status] += 1
        self.orders.put(order)

    async def _insert(
        self, key_id: str, order: Order, command: PlaceOrder, fingerprint: str
    ) -> None:
        changes = store.placed(
            order, command.idempotency_key, fingerprint, self.SOURCE, [order_event(order)]
        )
        if order.id != key_id:
            # The key was used before, and its window has passed: its old row goes with it.
            cutoff = utcnow() - self._key_ttl
            work = store.expired_key_dropped(
                command.buyer_id, command.idempotency_key, cutoff, changes
            )
            await store.write_placed(self.writer, work)
        else:
            await store.write_placed(self.writer, changes)
        self.keys[key_id] = store.KeyUse(order.id, fingerprint, order.created_at)
        self._remember(order, None)

    async def _save(
        self,
        order: Order,
        *,
        status: OrderStatus | None = None,
        failure_reason: str | None = None,
    ) -> Order:
        """Persist a status change (with its event) or a recorded intent to compensate."""
        now = utcnow()
        if status is not None:
            updated, event = order.moved(status, now, failure_reason)
            events = [event]
        else:
            updated, events = order.with_intent(failure_reason, now), []
        # A saga's step must be recorded before the saga goes on; an outage is waited out here
        # (the gateway answers `pending` meanwhile) rather than left for a restart to finish.
        await self.writer.write_until_done(
            store.saved(updated, self.SOURCE, events),
            f"order {updated.id} ({updated.status.value})",
        )
        self._remember(updated, order)
        if status is not None:
            self.peers.order_changed(updated)
        return updated


_ANSWERS: type[OrderCoordinatorApi] = OrderCoordinator  # mypy checks the class against its protocol
OrderCoordinatorActor = ray.remote(OrderCoordinator)


def _created(order: Order) -> tuple[datetime, str]:
    """When an order was placed, its id breaking ties: the order of a buyer's order list."""
    return (order.created_at, order.id)
