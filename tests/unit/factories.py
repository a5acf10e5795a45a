"""Builders for domain objects shared by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marketplace.domain.catalog import Product
from marketplace.domain.orders import Order, OrderItem, OrderStatus, ShippingAddress
from marketplace.store.changes import Changes
from marketplace.store.failures import database_unavailable
from marketplace.store.writer import Work, Writer

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def hex_id(prefix: str, n: int) -> str:
    """A well-formed, deterministic id such as ``prd_000...07``."""
    return f"{prefix}_{n:032x}"


BUYER = hex_id("usr", 1)
SELLER_A = hex_id("usr", 0xA)
SELLER_B = hex_id("usr", 0xB)


def make_product(n: int = 1, **changes: Any) -> Product:
    fields: dict[str, Any] = {
        "id": hex_id("prd", n),
        "seller_id": SELLER_A,
        "name": f"product {n}",
        "description": "",
        "category": "misc",
        "price_cents": 100,
        "version": 1,
        "active": True,
    }
    fields.update(changes)
    return Product(**fields)


def address(**changes: Any) -> dict[str, Any]:
    fields = {
        "name": "Ada Lovelace",
        "street": "1 Analytical Way",
        "city": "London",
        "zip": "N1 9GU",
        "country": "GB",
    }
    fields.update(changes)
    return fields


def make_item(
    n: int, seller_id: str = SELLER_A, quantity: int = 1, unit_price_cents: int = 100
) -> OrderItem:
    return OrderItem(
        product_id=hex_id("prd", n),
        seller_id=seller_id,
        quantity=quantity,
        unit_price_cents=unit_price_cents,
        product_version=1,
    )


def make_order(
    items: tuple[OrderItem, ...] | None = None,
    status: OrderStatus = OrderStatus.PENDING,
    n: int = 1,
    **changes: Any,
) -> Order:
    if items is None:
        items = (make_item(1),)
    fields: dict[str, Any] = {
        "id": hex_id("ord", n),
        "buyer_id": BUYER,
        "status": status,
        "items": items,
        "total_cents": sum(item.subtotal_cents for item in items),
        "created_at": T0,
        "updated_at": T0,
        "card_token": "tok_visa",
        "shipping_address": ShippingAddress(**address()),
    }
    fields.update(changes)
    return Order(**fields)


class LosingWriter(Writer):
    """Commits every write; the answer of the next ``lose`` of them is lost on the way back."""

    lose: int = 0

    async def write(self, work: Work | Changes) -> None:
        await super().write(work)
        if self.lose:
            self.lose -= 1
            raise database_unavailable(ConnectionResetError("connection reset after COMMIT"))
