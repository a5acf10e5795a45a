"""Carts: what a buyer means to buy, priced when the item was put in."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from marketplace.domain.catalog import Product
from marketplace.domain.errors import InvalidInput
from marketplace.domain.orders import MAX_LINE_QUANTITY, MAX_LINES, OrderLine


class CartItem(BaseModel):
    """A cart line with the price and product version seen when it was set."""

    model_config = ConfigDict(frozen=True)

    product_id: str
    quantity: int
    unit_price_cents: int
    product_version: int


class Cart(BaseModel):
    """One buyer's cart."""

    model_config = ConfigDict(frozen=True)

    buyer_id: str
    items: tuple[CartItem, ...] = ()
    version: int = 0

    @property
    def total_cents(self) -> int:
        """The sum of the lines at the prices they were added at."""
        return sum(item.unit_price_cents * item.quantity for item in self.items)

    def with_quantity(self, product: Product | None, product_id: str, quantity: int) -> Cart:
        """The cart with ``product_id`` set to ``quantity`` (0 removes it)."""
        if (
            not isinstance(quantity, int)
            or isinstance(quantity, bool)
            or not 0 <= quantity <= MAX_LINE_QUANTITY
        ):
            raise InvalidInput(f"quantity must be 0 to {MAX_LINE_QUANTITY}", field="quantity")
        others = tuple(item for item in self.items if item.product_id != product_id)
        if quantity == 0:
            return self.model_copy(update={"items": others, "version": self.version + 1})
        if product is None or not product.active:
            raise InvalidInput(f"product {product_id} is not for sale", field="product_id")
        if len(others) >= MAX_LINES:
            raise InvalidInput(f"a cart holds at most {MAX_LINES} products", field="product_id")
        item = CartItem(
            product_id=product_id,
            quantity=quantity,
            unit_price_cents=product.price_cents,
            product_version=product.version,
        )
        return self.model_copy(update={"items": (*others, item), "version": self.version + 1})

    def without(self, lines: tuple[OrderLine, ...]) -> Cart:
        """The cart after checking out ``lines`` (quantities added since are kept)."""
        bought = {line.product_id: line.quantity for line in lines}
        items = []
        for item in self.items:
            left = item.quantity - bought.get(item.product_id, 0)
            if left > 0:
                items.append(item.model_copy(update={"quantity": left}))
        return self.model_copy(update={"items": tuple(items), "version": self.version + 1})

    def lines(self) -> tuple[OrderLine, ...]:
        """The cart as checkout lines."""
        return tuple(OrderLine(product_id=i.product_id, quantity=i.quantity) for i in self.items)

    def public(self) -> dict[str, Any]:
        """The cart as clients see it (DESIGN.md section 6)."""
        return {
            "items": [item.model_dump() for item in self.items],
            "total_cents": self.total_cents,
        }
