"""Orders: the checkout command, the order state machine and request fingerprints."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace.domain.errors import Conflict, InvalidInput
from marketplace.domain.events import DomainEvent, EventType
from marketplace.domain.ids import is_id, order_id_for

MAX_LINE_QUANTITY = 1000
MAX_LINES = 50


class OrderStatus(StrEnum):
    """pending -> confirmed -> shipped -> delivered; pending or confirmed -> cancelled."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({OrderStatus.DELIVERED, OrderStatus.CANCELLED})
# Statuses whose orders count as sold (for charges, dashboards and stock).
SOLD_STATUSES = frozenset({OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED})

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


class FailureReason(StrEnum):
    """Why an order ended cancelled."""

    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_FAILED = "payment_failed"
    PRODUCT_UNAVAILABLE = "product_unavailable"
    CANCELLED_BY_BUYER = "cancelled_by_buyer"


class OrderLine(BaseModel):
    """A product and how many of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: str
    quantity: int = Field(strict=True, ge=1, le=MAX_LINE_QUANTITY)


class ShippingAddress(BaseModel):
    """Where the parcels go."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    zip: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")


class PlaceOrder(BaseModel):
    """Check out: ``lines`` absent means the buyer's cart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    buyer_id: str
    idempotency_key: str = Field(min_length=1, max_length=200)
    lines: tuple[OrderLine, ...] | None = None
    card_token: str = Field(min_length=1, max_length=100)
    shipping_address: ShippingAddress
    # The total the buyer was shown: the checkout is refused (PriceChanged) if prices moved.
    expected_total_cents: int | None = Field(default=None, ge=0, le=10**15)

    def order_id(self) -> str:
        """The order this command makes (derived from buyer and key, so replays meet)."""
        return order_id_for(self.buyer_id, self.idempotency_key)

    def fingerprint(self) -> str:
        """A digest of the request body: the same key must come with the same body."""
        body: dict[str, Any] = {
            "lines": None if self.lines is None else [line.model_dump() for line in self.lines],
            "card_token": self.card_token,
            "shipping_address": self.shipping_address.model_dump(),
        }
        if self.expected_total_cents is not None:  # absent: the digests of older orders hold
            body["expected_total_cents"] = self.expected_total_cents
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_place_order(data: dict[str, Any]) -> PlaceOrder:
    """Validate a checkout request; InvalidInput names the first bad field."""
    try:
        command = PlaceOrder.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from None
    if not is_id(command.buyer_id, "usr"):
        raise InvalidInput("buyer_id is not a user id", field="buyer_id")
    if command.lines is not None:
        check_lines(command.lines)
    return command


def check_lines(lines: tuple[OrderLine, ...]) -> None:
    """Lines must be non-empty, few enough, with well-formed and distinct product ids."""
    if not lines:
        raise InvalidInput("an order needs at least one item", field="items")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"an order has at most {MAX_LINES} items", field="items")
    seen: set[str] = set()
    for line in lines:
        if not is_id(line.product_id, "prd"):
            raise InvalidInput(f"{line.product_id!r} is not a product id", field="items.product_id")
        if line.product_id in seen:
            raise InvalidInput(f"{line.product_id} appears twice", field="items.product_id")
        seen.add(line.product_id)


class OrderItem(BaseModel):
    """A priced line of an order, as read from the catalog at checkout.

    ``unit_price_cents`` is what the line is charged at. ``shown_unit_price_cents`` is the
    price the buyer's cart held for the line (the price when it was put in the cart) when
    the order checked out the cart; None when the checkout named its items (no price was
    shown), and in orders placed before the field existed. The two differ when the price
    moved after the line went into the cart and the checkout gave no ``expected_total_cents``.
    """

    model_config = ConfigDict(frozen=True)

    product_id: str
    seller_id: str
    quantity: int
    unit_price_cents: int
    product_version: int
    shown_unit_price_cents: int | None = None

    @property
    def subtotal_cents(self) -> int:
        """Price times quantity."""
        return self.unit_price_cents * self.quantity


class Order(BaseModel):
    """An order and where its saga stands."""

    model_config = ConfigDict(frozen=True)

    id: str
    buyer_id: str
    status: OrderStatus
    failure_reason: str | None = None
    items: tuple[OrderItem, ...]
    total_cents: int
    created_at: datetime
    updated_at: datetime
    version: int = 1
    card_token: str
    shipping_address: ShippingAddress

    @property
    def terminal(self) -> bool:
        """Whether the order can change no more."""
        return self.status in TERMINAL_STATUSES

    @property
    def charged_unshown_price(self) -> bool:
        """Whether a line is charged at another price than its cart line showed (a stale cart:
        the price moved after the line was added, and the checkout named no expected total)."""
        return any(
            item.shown_unit_price_cents is not None
            and item.shown_unit_price_cents != item.unit_price_cents
            for item in self.items
        )

    def transition(
        self, status: OrderStatus, now: datetime, failure_reason: str | None = None
    ) -> Order:
        """The order in its next status; Conflict if the state machine forbids it."""
        if status not in TRANSITIONS[self.status]:
            raise Conflict(
                f"order {self.id} is {self.status.value}; it cannot become {status.value}",
                order_id=self.id,
                status=self.status.value,
            )
        return self.model_copy(
            update={
                "status": status,
                "failure_reason": failure_reason,
                "updated_at": now,
                "version": self.version + 1,
            }
        )

    def moved(
        self, status: OrderStatus, now: datetime, failure_reason: str | None = None
    ) -> tuple[Order, DomainEvent]:
        """``transition``, with the event that announces the new status."""
        updated = self.transition(status, now, failure_reason)
        return updated, order_event(updated)

    def with_intent(self, failure_reason: str | None, now: datetime) -> Order:
        """The order with a recorded intent to compensate (no new status, so no event): a
        resumed saga that finds it compensates instead of going forward."""
        return self.model_copy(
            update={
                "failure_reason": failure_reason,
                "updated_at": now,
                "version": self.version + 1,
            }
        )

    def public(self) -> dict[str, Any]:
        """The order as clients see it (DESIGN.md section 6)."""
        return {
            "id": self.id,
            "buyer_id": self.buyer_id,
            "status": self.status.value,
            "failure_reason": self.failure_reason,
            "items": [item.model_dump() for item in self.items],
            "total_cents": self.total_cents,
            "created_at": self.created_at.isoformat(),
        }

    def items_by_seller(self) -> dict[str, list[OrderItem]]:
        """The items grouped by seller, one package each."""
        grouped: dict[str, list[OrderItem]] = {}
        for item in self.items:
            grouped.setdefault(item.seller_id, []).append(item)
        return grouped


_EVENT_OF_STATUS = {
    OrderStatus.PENDING: EventType.ORDER_PLACED,
    OrderStatus.CONFIRMED: EventType.ORDER_CONFIRMED,
    OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
    OrderStatus.SHIPPED: EventType.ORDER_SHIPPED,
    OrderStatus.DELIVERED: EventType.ORDER_DELIVERED,
}


def order_event(order: Order) -> DomainEvent:
    """The event that announces ``order`` in its current status (placed, confirmed, ...)."""
    return DomainEvent(
        type=_EVENT_OF_STATUS[order.status],
        subject=order.id,
        sequence=order.version,
        data={**order.public(), "version": order.version},
    )
