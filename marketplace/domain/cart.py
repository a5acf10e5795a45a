"""Carts: what a buyer means to buy, priced when the item was put in, and shown beside the
products' current prices (``Cart.priced``)."""

from __future__ import annotations

from collections.abc import Mapping
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

    def shown_prices(self) -> dict[str, int]:
        """Each line's price as the cart holds it (the price when the line was set), by
        product id: what a checkout of the cart records as the price the buyer was shown."""
        return {item.product_id: item.unit_price_cents for item in self.items}

    def public(self) -> dict[str, Any]:
        """The cart as clients see it (DESIGN.md section 6)."""
        return {
            "items": [item.model_dump() for item in self.items],
            "total_cents": self.total_cents,
        }

    def priced(self, products: Mapping[str, Product]) -> PricedCart:
        """The cart beside the current state of its products (``products`` by id, as just
        read from the catalog).

        A product the catalog does not know (products are never deleted, so only a lost one)
        shows as unavailable at the price and version the line holds.
        """
        items = []
        for item in self.items:
            product = products.get(item.product_id)
            price = item.unit_price_cents if product is None else product.price_cents
            items.append(
                PricedCartItem(
                    **item.model_dump(),
                    current_price_cents=price,
                    current_version=item.product_version if product is None else product.version,
                    price_changed=price != item.unit_price_cents,
                    available=product is not None and product.active,
                )
            )
        return PricedCart(buyer_id=self.buyer_id, items=tuple(items), version=self.version)


class PricedCartItem(CartItem):
    """A cart line beside its product as it is now: ``unit_price_cents`` and
    ``product_version`` stay what they were when the line was set."""

    current_price_cents: int
    current_version: int
    # The current price differs from the line's (a version change alone, a new name or
    # description, is no price change).
    price_changed: bool
    # The product is still for sale; a checkout of a cart with an unavailable line ends
    # cancelled (product_unavailable).
    available: bool


class PricedCart(BaseModel):
    """A cart as the buyer is shown it: each line at the price it was set at and at the
    product's current price (what ``MarketplaceClient.get_cart`` answers)."""

    model_config = ConfigDict(frozen=True)

    buyer_id: str
    items: tuple[PricedCartItem, ...] = ()
    version: int = 0

    @property
    def total_cents(self) -> int:
        """The sum of the lines at the prices they were set at."""
        return sum(item.unit_price_cents * item.quantity for item in self.items)

    @property
    def current_total_cents(self) -> int:
        """The sum of the lines at the current prices: what a checkout of the cart would
        charge now (its ``expected_total_cents``), unavailable lines included, as a checkout
        prices them."""
        return sum(item.current_price_cents * item.quantity for item in self.items)

    @property
    def price_changed(self) -> bool:
        """Whether any line's price moved since it was set."""
        return any(item.price_changed for item in self.items)

    def public(self) -> dict[str, Any]:
        """The cart as clients see it: DESIGN.md section 6's fields, and the current prices."""
        return {
            "items": [item.model_dump() for item in self.items],
            "total_cents": self.total_cents,
            "current_total_cents": self.current_total_cents,
            "price_changed": self.price_changed,
        }
