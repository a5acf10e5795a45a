"""What every target keeps the same way: the customers' carts as the simulator filled them, and
how a checkout's order and an idle carrier read as outcomes."""

from __future__ import annotations

import uuid

from marketplace.domain.orders import MAX_LINE_QUANTITY, OrderStatus
from marketplace.sim.loops import OK, Outcome

IDLE = "idle"
"""The reason of a ``MoveShipment`` that found no shipment due: ok, nothing was wrong."""

IdleCarrier = Outcome(True, IDLE)


class Carts:
    """Each customer's cart lines as this run's ``AddToCart`` operations set them.

    The contract's cart write sets a line's quantity (``PUT /v1/cart/items/{id}``); the
    simulator's ``AddToCart`` adds units, so the target adds to what it put there before, capped
    at the largest quantity a line may hold. A customer's operations run in order (the loops see
    to it), so this mirror needs no lock.
    """

    def __init__(self) -> None:
        self._lines: dict[str, dict[str, int]] = {}

    def add(self, customer: str, product_id: str, quantity: int) -> int:
        """Add ``quantity`` units; the line's new quantity (what to write)."""
        lines = self._lines.setdefault(customer, {})
        lines[product_id] = min(lines.get(product_id, 0) + quantity, MAX_LINE_QUANTITY)
        return lines[product_id]

    def forget(self, customer: str) -> None:
        """The customer checked out or left: the next session starts from an empty cart."""
        self._lines.pop(customer, None)


# The note on a confirmed checkout that charged a line at another price than its cart showed
# (the price moved after the line went in; the simulated buyer names no expected total).
STALE_CART = "stale_cart"


def order_outcome(
    status: OrderStatus | str, failure_reason: str | None, stale_cart: bool = False
) -> Outcome:
    """A checkout's outcome from its order: ok once confirmed (noted ``stale_cart`` when it
    charged a price the cart did not show), else failed with the saga's reason
    (``out_of_stock``, ``payment_declined``, ...) or ``pending`` if it has not ended."""
    if status == OrderStatus.CONFIRMED:
        return Outcome(True, STALE_CART) if stale_cart else OK
    if status == OrderStatus.PENDING:
        return Outcome.failure("pending")
    # str(): the saga's reasons may be FailureReason members; reasons are plain strings here.
    return Outcome.failure(str(failure_reason) if failure_reason else str(status))


def run_scope() -> str:
    """A fresh prefix for one target's idempotency keys.

    The same seed draws the same checkout keys, so a second run against the same marketplace
    would replay the first run's orders instead of placing new ones. Each target prefixes its
    keys with its own scope: the intended operations stay the seed's, and a retry within the run
    (the same target) still reuses its key.
    """
    return uuid.uuid4().hex[:12]


def scoped_key(scope: str, key: str) -> str:
    """``key`` as sent by the target whose scope is ``scope``."""
    return f"{scope}:{key}"
