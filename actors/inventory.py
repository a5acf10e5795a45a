"""InventoryPartition: stock of the products hashed to it, and reservations by order id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ray

from actors.base import ActorBase
from actors.lru import LruCache
from actors.protocols import InventoryPartitionApi
from marketplace.domain.errors import (
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidInput,
    TransientFailure,
)
from marketplace.domain.inventory import (
    Reservation,
    ReservationState,
    ReserveOutcome,
    StockItem,
    next_state,
    outcome_of,
)
from marketplace.store import inventory as store
from marketplace.store.inventory import DuplicateRequest
from marketplace.store.writer import Writer


class InventoryPartition(ActorBase):
    """Owns stock by ``stable_hash(product_id) % partitions``.

    A reservation is all-or-nothing per partition and idempotent by order id: a repeated
    reserve answers what the first one decided, and a reserve that arrives after the order
    was released finds the tombstone and holds nothing.

    Memory holds the stock of every product it owns, the reservations of the orders that still
    hold units here (``reservations``: the open work) and those of orders settled here
    (committed, released, rejected, returned) in ``settled``. With sync durability the store
    has every reservation and restock request id before memory does, so ``settled`` and
    ``applied_requests`` keep only the ``inventory_cache_size`` most recently used, and an order
    memory does not hold is read back from the store before anything is decided about it (the
    tombstone above included). With async or none durability memory is the newest (or the
    only) copy, so it keeps them all.
    """

    SOURCE = "marketplace/inventory"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        self.stock: dict[str, StockItem] = {}
        # order id -> its reservations here, for the orders with units held (the open work)
        self.reservations: dict[str, dict[str, Reservation]] = {}
        # Products whose last stock change failed without a sure answer (see adjust_stock).
        self.unsure_stock: set[str] = set()
        # Orders whose last reservation write failed without a sure answer (see _persist).
        self.unsure_orders: set[str] = set()
        # Whether load() read every reservation of this partition (see _knows_every_order).
        self._loaded_all = True
        super().__init__(settings, index, count, writer=writer)
        limit = self.settings.inventory_cache_size if self.store_first else None
        # order id -> its reservations here, for the orders that hold nothing any more
        self.settled: LruCache[str, dict[str, Reservation]] = LruCache(limit)
        # request id -> the delta it applied: a repeat answers, a repeat with another delta is
        # refused (an Idempotency-Key reused for a different change). One forgotten here is
        # still refused by the store, where its stock movement holds the id (DuplicateRequest).
        self.applied_requests: LruCache[str, int] = LruCache(limit)

    async def load(self) -> None:
        # Under sync, every reservation when the cache can hold them all, so that memory knows
        # every order and a reserve of a new one asks the store nothing; past that only the
        # held ones, and the settled ones are read back when asked for.
        held_only = self.store_first and (
            await store.order_count(self.database, self.index, self.count)
            > self.settings.inventory_cache_size
        )
        stock, loaded = await store.load_owned(
            self.database, self.index, self.count, held_only=held_only
        )
        self.stock.update((item.product_id, item) for item in stock)
        orders: dict[str, dict[str, Reservation]] = {}
        for reservation in loaded:
            orders.setdefault(reservation.order_id, {})[reservation.product_id] = reservation
        for order_id, records in orders.items():
            self._remember(order_id, records)
        self._loaded_all = not held_only

    # -- stock -------------------------------------------------------------------------------

    async def adjust_stock(self, product_id: str, delta: int, request_id: str) -> StockItem:
        """Add or remove units, once per ``request_id``; never below zero available.

        A repeated request id answers the current stock and changes nothing; with a different
        ``delta`` it is refused (``IdempotencyKeyReused``), before or after a restart.
        """
        await self.loaded()
        async with self.locks.hold(product_id):
            await self._reconcile_stock([product_id])
            item = self._item(product_id)
            if request_id in self.applied_requests:
                return self._repeated(item, self.applied_requests[request_id], delta)
            try:
                updated = item.adjust(delta)
            except InsufficientStock:
                # A write-off applied before a restart may no longer fit what is left: it is
                # still a repeat, to be answered as one.
                applied = await self._stored_delta(request_id)
                if applied is None:
                    raise
                self.applied_requests[request_id] = applied
                return self._repeated(item, applied, delta)
            try:
                await self.writer.write(store.adjustment(request_id, delta, updated, self.SOURCE))
            except DuplicateRequest as duplicate:
                # Applied before: before a restart (memory, loaded since, includes it), or by
                # an attempt whose commit went through with its answer lost (memory does not).
                # The store's row is right either way.
                self.applied_requests[request_id] = duplicate.delta
                self.unsure_stock.add(product_id)
                await self._reconcile_stock([product_id])
                return self._repeated(self._item(product_id), duplicate.delta, delta)
            except TransientFailure:
                # The movement and the stock row may have committed with the answer lost: the
                # next operation on the product reads them back rather than trust memory. A
                # retry with the same request id then meets DuplicateRequest above.
                self.unsure_stock.add(product_id)
                raise
            self.applied_requests[request_id] = delta
            self.stock[product_id] = updated
            return updated

    async def _stored_delta(self, request_id: str) -> int | None:
        if self.engine is None:
            return None
        return await store.stored_delta(self.engine, request_id)

    @staticmethod
    def _repeated(item: StockItem, applied: int, delta: int) -> StockItem:
        if applied != delta:
            raise IdempotencyKeyReused(
                f"this stock change was already made with delta {applied}, not {delta}"
            )
        return item

    async def get_stock(self, product_ids: list[str]) -> dict[str, StockItem]:
        """Stock of each product (a product with no stock row has none)."""
        await self.loaded()
        return {pid: self._item(pid) for pid in product_ids}

    # -- reservations ------------------------------------------------------------------------

    async def reserve(self, order_id: str, lines: list[tuple[str, int]]) -> ReserveOutcome:
        """Hold every line or none of them."""
        await self.loaded()
        if not lines:
            raise InvalidInput("nothing to reserve")
        product_ids = [product_id for product_id, _ in lines]
        async with self.locks.hold(order_id, *product_ids):
            known = await self._reservations_of(order_id)
            await self._reconcile_stock(product_ids)
            if known:
                return outcome_of(known.values())
            updated: dict[str, StockItem] = {}
            try:
                for product_id, quantity in lines:
                    updated[product_id] = self._item(product_id).reserve(quantity)
                state = ReservationState.HELD
            except InsufficientStock:
                updated = {}
                state = ReservationState.REJECTED
            records = {
                product_id: Reservation(
                    order_id=order_id, product_id=product_id, quantity=quantity, state=state
                )
                for product_id, quantity in lines
            }
            await self._persist(order_id, {}, records, updated)
            return outcome_of(records.values())

    async def commit(self, order_id: str) -> None:
        """Turn the order's held units into sold ones; idempotent."""
        await self._settle(order_id, ReservationState.COMMITTED, [])

    async def release(self, order_id: str, product_ids: list[str]) -> None:
        """Give back what the order holds or bought; leaves tombstones for lines never held."""
        await self._settle(order_id, ReservationState.RELEASED, product_ids)

    async def _settle(
        self, order_id: str, target: ReservationState, product_ids: list[str]
    ) -> None:
        await self.loaded()
        locked = {*product_ids, *self._in_memory(order_id)}
        while True:
            async with self.locks.hold(order_id, *locked):
                known = await self._reservations_of(order_id)
                if known.keys() <= locked:
                    await self._settle_known(order_id, known, target, product_ids)
                    return
            # Read back from the store: lock the order's products too, then look again.
            locked |= known.keys()

    async def _settle_known(
        self,
        order_id: str,
        known: dict[str, Reservation],
        target: ReservationState,
        product_ids: list[str],
    ) -> None:
        """``_settle`` with the order's reservations here in hand (under its locks)."""
        await self._reconcile_stock([*known, *product_ids])
        records: dict[str, Reservation] = {}
        updated: dict[str, StockItem] = {}
        for product_id, reservation in known.items():
            item = self._item(product_id)
            moved_to = next_state(reservation.state, target)
            if moved_to is None:
                continue
            if moved_to is ReservationState.COMMITTED:
                updated[product_id] = item.commit(reservation.quantity)
            elif moved_to is ReservationState.RELEASED:
                updated[product_id] = item.release(reservation.quantity)
            elif moved_to is ReservationState.RETURNED:
                updated[product_id] = item.unsell(reservation.quantity)
            records[product_id] = reservation.model_copy(update={"state": moved_to})
        if target is ReservationState.RELEASED:
            for product_id in product_ids:
                if product_id not in known:
                    records[product_id] = Reservation(
                        order_id=order_id,
                        product_id=product_id,
                        quantity=0,
                        state=ReservationState.RELEASED,
                    )
        if records:
            await self._persist(order_id, known, records, updated)

    async def snapshot(self) -> dict[str, Any]:
        """Stock and reservations as this partition holds them in memory (audit): under sync
        durability the held ones and the settled ones still cached, otherwise all of them."""
        await self.loaded()
        orders = [*self.reservations.values(), *self.settled.values()]
        return {
            "stock": dict(self.stock),
            "reservations": [r for rs in orders for r in rs.values()],
        }

    # -- helpers -----------------------------------------------------------------------------

    async def _reconcile_stock(self, product_ids: Iterable[str]) -> None:
        """Take the store's stock rows for those of ``product_ids`` whose last stock change
        had no sure answer (under the products' locks)."""
        for product_id in [pid for pid in product_ids if pid in self.unsure_stock]:
            if self.engine is not None:
                stored = await store.load_item(self.engine, product_id)
                if stored is None:
                    self.stock.pop(product_id, None)
                else:
                    self.stock[product_id] = stored
            self.unsure_stock.discard(product_id)

    def _item(self, product_id: str) -> StockItem:
        return self.stock.get(product_id) or StockItem(product_id=product_id)

    def _in_memory(self, order_id: str) -> dict[str, Reservation]:
        """The order's reservations here as memory holds them (empty when it does not)."""
        return self.reservations.get(order_id) or self.settled.get(order_id) or {}

    async def _reservations_of(self, order_id: str) -> dict[str, Reservation]:
        """The order's reservations here, read back from the store when memory does not hold
        them under sync durability (an order settled long ago, or one whose last write had
        no sure answer); under the order's lock, since what is read back is kept."""
        known = self.reservations.get(order_id)
        if known is None:
            known = self.settled.get(order_id)
        if known is not None or not self.store_first:
            return dict(known or {})
        if self._knows_every_order() and order_id not in self.unsure_orders:
            return {}  # never seen here: a new order
        # An order memory does not hold: only the store knows whether it was released (a
        # tombstone) or committed before memory forgot it.
        stored = await store.load_order(self.database, order_id, self.index, self.count)
        self.unsure_orders.discard(order_id)
        records = {reservation.product_id: reservation for reservation in stored}
        if records:
            self._remember(order_id, records)
        return dict(records)

    def _knows_every_order(self) -> bool:
        """Whether memory holds every order that has reservations here (loaded all of them,
        and dropped none since), so that one it does not hold has none."""
        return self._loaded_all and self.settled.dropped == 0

    def _remember(self, order_id: str, records: dict[str, Reservation]) -> None:
        """Keep the order's reservations here: with the open work while it holds units (an
        order's reservations here are all held or none: a reserve holds every line or none,
        and a release gives back every held one), else with the settled ones."""
        if any(r.state is ReservationState.HELD for r in records.values()):
            self.settled.pop(order_id, None)
            self.reservations[order_id] = records
        else:
            self.reservations.pop(order_id, None)
            self.settled[order_id] = records

    async def _persist(
        self,
        order_id: str,
        known: dict[str, Reservation],
        records: dict[str, Reservation],
        updated: dict[str, StockItem],
    ) -> None:
        try:
            await self.writer.write(store.reserved(records.values(), updated.values(), self.SOURCE))
        except TransientFailure:
            if self.store_first:
                # The rows may have committed with the answer lost: the next operation on
                # the order reads its reservations back, and the next on each product its
                # stock, rather than trust memory.
                self.reservations.pop(order_id, None)
                self.settled.pop(order_id, None)
                self.unsure_orders.add(order_id)
                self.unsure_stock.update(updated)
            raise
        self._remember(order_id, {**known, **records})
        self.stock.update(updated)


_ANSWERS: type[InventoryPartitionApi] = (
    InventoryPartition  # mypy checks the class against its protocol
)
InventoryPartitionActor = ray.remote(InventoryPartition)
