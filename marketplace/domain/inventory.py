"""Stock arithmetic and reservations (invariant I1: sold + reserved + available == stocked)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from marketplace.domain.errors import InsufficientStock, InvalidInput
from marketplace.domain.events import DomainEvent, EventType
from marketplace.domain.ids import sibling_id

MAX_STOCK_DELTA = 1_000_000_000


class StockItem(BaseModel):
    """Stock of one product. ``available`` is derived, so I1 holds by construction;
    the transitions keep every counter non-negative."""

    model_config = ConfigDict(frozen=True)

    product_id: str
    stocked: int = 0
    reserved: int = 0
    sold: int = 0
    version: int = 0

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.stocked - self.reserved - self.sold

    def adjust(self, delta: int) -> StockItem:
        """Add (restock) or remove units; never takes availability below zero."""
        if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
            raise InvalidInput("delta must be a non-zero integer", field="delta")
        if abs(delta) > MAX_STOCK_DELTA:
            raise InvalidInput(f"delta must be within ±{MAX_STOCK_DELTA}", field="delta")
        if self.available + delta < 0:
            raise InsufficientStock(
                f"cannot remove {-delta} units: only {self.available} available",
                product_id=self.product_id,
                available=self.available,
            )
        return self.model_copy(
            update={"stocked": self.stocked + delta, "version": self.version + 1}
        )

    def reserve(self, quantity: int) -> StockItem:
        """Hold units for an order."""
        _check_quantity(quantity)
        if quantity > self.available:
            raise InsufficientStock(
                f"only {self.available} of {self.product_id} available",
                product_id=self.product_id,
                available=self.available,
            )
        return self.model_copy(
            update={"reserved": self.reserved + quantity, "version": self.version + 1}
        )

    def commit(self, quantity: int) -> StockItem:
        """Turn held units into sold ones."""
        _check_quantity(quantity)
        if quantity > self.reserved:
            raise InvalidInput("cannot commit more than is reserved", product_id=self.product_id)
        return self.model_copy(
            update={
                "reserved": self.reserved - quantity,
                "sold": self.sold + quantity,
                "version": self.version + 1,
            }
        )

    def release(self, quantity: int) -> StockItem:
        """Give held units back."""
        _check_quantity(quantity)
        if quantity > self.reserved:
            raise InvalidInput("cannot release more than is reserved", product_id=self.product_id)
        return self.model_copy(
            update={"reserved": self.reserved - quantity, "version": self.version + 1}
        )

    def unsell(self, quantity: int) -> StockItem:
        """Put sold units back on the shelf (a confirmed order was cancelled)."""
        _check_quantity(quantity)
        if quantity > self.sold:
            raise InvalidInput("cannot return more than was sold", product_id=self.product_id)
        return self.model_copy(update={"sold": self.sold - quantity, "version": self.version + 1})


class ReservationState(StrEnum):
    """Life of one order's hold on one product."""

    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"  # held, then given back; also a tombstone for a late reserve
    REJECTED = "rejected"  # not enough stock at the time
    RETURNED = "returned"  # committed, then the order was cancelled


class Reservation(BaseModel):
    """One order's hold on one product, keyed by (order_id, product_id)."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    product_id: str
    quantity: int
    state: ReservationState


class ReserveOutcome(StrEnum):
    """The answer to a reservation request for the lines of one partition."""

    RESERVED = "reserved"
    OUT_OF_STOCK = "out_of_stock"
    RELEASED = "released"  # the order was already released: a late, retried reserve


def stock_changed(item: StockItem) -> DomainEvent:
    """The ``stock.changed`` event of a stock item in its new state."""
    return DomainEvent(
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


def next_state(current: ReservationState, target: ReservationState) -> ReservationState | None:
    """Where a reservation goes when its order commits or releases (``target``); None: stays."""
    if target is ReservationState.COMMITTED:
        return ReservationState.COMMITTED if current is ReservationState.HELD else None
    if current is ReservationState.HELD:
        return ReservationState.RELEASED
    if current is ReservationState.COMMITTED:
        return ReservationState.RETURNED
    return None


def outcome_of(records: Iterable[Reservation]) -> ReserveOutcome:
    """What a reserve answers, given the order's reservations in one partition."""
    states = {r.state for r in records}
    if ReservationState.REJECTED in states:
        return ReserveOutcome.OUT_OF_STOCK
    if states & {ReservationState.HELD, ReservationState.COMMITTED}:
        return ReserveOutcome.RESERVED
    return ReserveOutcome.RELEASED


def _check_quantity(quantity: int) -> None:
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        raise InvalidInput("quantity must be a positive integer", field="quantity")
