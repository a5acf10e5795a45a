"""InventoryPartition: stock of the products hashed to it, and reservations by order id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ray
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from actors.base import ActorBase
from marketplace.domain.errors import IdempotencyKeyReused, InsufficientStock, InvalidInput
from marketplace.domain.events import DomainEvent, EventType
from marketplace.domain.ids import sibling_id, stable_hash
from marketplace.domain.inventory import (
    Reservation,
    ReservationState,
    ReserveOutcome,
    StockItem,
)
from marketplace.store.changes import Changes
from marketplace.store.rows import insert_ignore, utcnow
from marketplace.store.tables import reservations, stock_items, stock_movements


class DuplicateRequest(Exception):
    """A stock movement with this request id was already applied, with ``delta``."""

    def __init__(self, request_id: str, delta: int) -> None:
        super().__init__(request_id)
        self.delta = delta


def _applied_delta(request_id: str) -> Select[tuple[int]]:
    """The delta a stock movement applied under ``request_id`` (no row when none did)."""
    return select(stock_movements.c.delta).where(stock_movements.c.request_id == request_id)


class InventoryPartition(ActorBase):
    """Owns stock by ``stable_hash(product_id) % partitions``.

    A reservation is all-or-nothing per partition and idempotent by order id: a repeated
    reserve answers what the first one decided, and a reserve that arrives after the order
    was released finds the tombstone and holds nothing.
    """

    SOURCE = "marketplace/inventory"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.stock: dict[str, StockItem] = {}
        self.reservations: dict[str, dict[str, Reservation]] = {}
        # request id -> the delta it applied: a repeat answers, a repeat with another delta is
        # refused (an Idempotency-Key reused for a different change).
        self.applied_requests: dict[str, int] = {}
        super().__init__(settings, index, count)

    async def load(self, conn: AsyncConnection) -> None:
        rows = await conn.execute(select(stock_items).where(self.owned(stock_items)))
        for row in rows.mappings():
            self.stock[row["product_id"]] = StockItem.model_validate(dict(row))
        rows = await conn.execute(select(reservations).where(self.owned(reservations)))
        for row in rows.mappings():
            reservation = Reservation.model_validate(dict(row))
            self.reservations.setdefault(reservation.order_id, {})[reservation.product_id] = (
                reservation
            )

    # -- stock -------------------------------------------------------------------------------

    async def adjust_stock(self, product_id: str, delta: int, request_id: str) -> StockItem:
        """Add or remove units, once per ``request_id``; never below zero available.

        A repeated request id answers the current stock and changes nothing; with a different
        ``delta`` it is refused (``IdempotencyKeyReused``), before or after a restart.
        """
        await self.ready()
        async with self.locks.hold(product_id):
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
            movement = {
                "request_id": request_id,
                "product_id": product_id,
                "delta": delta,
                "created_at": utcnow(),
            }

            async def work(conn: AsyncConnection) -> None:
                if not await insert_ignore(conn, stock_movements, movement, ["request_id"]):
                    applied = await conn.execute(_applied_delta(request_id))
                    raise DuplicateRequest(request_id, int(applied.scalar_one()))
                await self._with_items(Changes(), [updated]).apply(conn)

            try:
                await self.writer.write(work)
            except DuplicateRequest as duplicate:
                # Applied before a restart; our in-memory copy came from the store, so it
                # already includes it.
                self.applied_requests[request_id] = duplicate.delta
                return self._repeated(item, duplicate.delta, delta)
            self.applied_requests[request_id] = delta
            self.stock[product_id] = updated
            return updated

    async def _stored_delta(self, request_id: str) -> int | None:
        if self.engine is None:
            return None
        async with self.engine.connect() as conn:
            delta = (await conn.execute(_applied_delta(request_id))).scalar_one_or_none()
        return None if delta is None else int(delta)

    @staticmethod
    def _repeated(item: StockItem, applied: int, delta: int) -> StockItem:
        if applied != delta:
            raise IdempotencyKeyReused(
                f"this stock change was already made with delta {applied}, not {delta}"
            )
        return item

    async def get_stock(self, product_ids: list[str]) -> dict[str, StockItem]:
        """Stock of each product (a product with no stock row has none)."""
        await self.ready()
        return {pid: self._item(pid) for pid in product_ids}

    # -- reservations ------------------------------------------------------------------------

    async def reserve(self, order_id: str, lines: list[tuple[str, int]]) -> ReserveOutcome:
        """Hold every line or none of them."""
        await self.ready()
        if not lines:
            raise InvalidInput("nothing to reserve")
        product_ids = [product_id for product_id, _ in lines]
        async with self.locks.hold(order_id, *product_ids):
            known = self.reservations.get(order_id)
            if known:
                return _outcome_of(known.values())
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
            await self._persist(records, updated)
            return _outcome_of(records.values())

    async def commit(self, order_id: str) -> None:
        """Turn the order's held units into sold ones; idempotent."""
        await self._settle(order_id, ReservationState.COMMITTED, [])

    async def release(self, order_id: str, product_ids: list[str]) -> None:
        """Give back what the order holds or bought; leaves tombstones for lines never held."""
        await self._settle(order_id, ReservationState.RELEASED, product_ids)

    async def _settle(
        self, order_id: str, target: ReservationState, product_ids: list[str]
    ) -> None:
        await self.ready()
        known = dict(self.reservations.get(order_id, {}))
        async with self.locks.hold(order_id, *known, *product_ids):
            known = dict(self.reservations.get(order_id, {}))
            records: dict[str, Reservation] = {}
            updated: dict[str, StockItem] = {}
            for product_id, reservation in known.items():
                item = self._item(product_id)
                next_state = _next_state(reservation.state, target)
                if next_state is None:
                    continue
                if next_state is ReservationState.COMMITTED:
                    updated[product_id] = item.commit(reservation.quantity)
                elif next_state is ReservationState.RELEASED:
                    updated[product_id] = item.release(reservation.quantity)
                elif next_state is ReservationState.RETURNED:
                    updated[product_id] = item.unsell(reservation.quantity)
                records[product_id] = reservation.model_copy(update={"state": next_state})
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
                await self._persist(records, updated)

    async def snapshot(self) -> dict[str, Any]:
        """Stock and reservations as this partition holds them in memory (audit)."""
        await self.ready()
        return {
            "stock": dict(self.stock),
            "reservations": [r for rs in self.reservations.values() for r in rs.values()],
        }

    # -- helpers -----------------------------------------------------------------------------

    def _item(self, product_id: str) -> StockItem:
        return self.stock.get(product_id) or StockItem(product_id=product_id)

    async def _persist(
        self, records: dict[str, Reservation], updated: dict[str, StockItem]
    ) -> None:
        rows = [
            {**r.model_dump(), "route_key": stable_hash(r.product_id)} for r in records.values()
        ]
        changes = Changes().upsert(reservations, rows, ["order_id", "product_id"])
        await self.writer.write(self._with_items(changes, updated.values()))
        for reservation in records.values():
            self.reservations.setdefault(reservation.order_id, {})[reservation.product_id] = (
                reservation
            )
        self.stock.update(updated)

    def _with_items(self, changes: Changes, items: Iterable[StockItem]) -> Changes:
        """``changes`` plus the stock rows of ``items`` and their ``stock.changed`` events."""
        items = list(items)
        rows = [{**item.model_dump(), "route_key": stable_hash(item.product_id)} for item in items]
        events = [
            DomainEvent(
                type=EventType.STOCK_CHANGED,
                subject=sibling_id(item.product_id, "stk"),
                sequence=item.version,
                data={
                    "product_id": item.product_id,
                    "stocked": item.stocked,
                    "reserved": item.reserved,
                    "sold": item.sold,
                    "available": item.available,
                },
            )
            for item in items
        ]
        return changes.upsert(stock_items, rows, ["product_id"]).events(self.SOURCE, events)


def _next_state(current: ReservationState, target: ReservationState) -> ReservationState | None:
    """Where a reservation goes when the order commits or releases; None: stays."""
    if target is ReservationState.COMMITTED:
        return ReservationState.COMMITTED if current is ReservationState.HELD else None
    if current is ReservationState.HELD:
        return ReservationState.RELEASED
    if current is ReservationState.COMMITTED:
        return ReservationState.RETURNED
    return None


def _outcome_of(records: Iterable[Reservation]) -> ReserveOutcome:
    states = {r.state for r in records}
    if ReservationState.REJECTED in states:
        return ReserveOutcome.OUT_OF_STOCK
    if states & {ReservationState.HELD, ReservationState.COMMITTED}:
        return ReserveOutcome.RESERVED
    return ReserveOutcome.RELEASED


InventoryPartitionActor = ray.remote(InventoryPartition)
