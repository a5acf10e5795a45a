"""HTTP request and response models, separate from the domain types (DESIGN.md section 6)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace.domain.catalog import MAX_PRICE_CENTS, Product
from marketplace.domain.orders import MAX_LINE_QUANTITY, MAX_LINES
from marketplace.domain.text import UNSTORABLE, all_storable


class Strict(BaseModel):
    """Request bodies refuse unknown fields, coerce nothing, and hold only text the store can
    keep (``marketplace.domain.text``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if not all_storable(value):
            raise ValueError(UNSTORABLE)
        return value


class UserCreate(Strict):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(min_length=8, max_length=256, examples=["correct horse battery"])
    name: str = Field(min_length=1, max_length=200, examples=["Ada"])
    role: Literal["buyer", "seller", "carrier", "admin"] = "buyer"


class PasswordChange(Strict):
    old_password: str = Field(min_length=1, max_length=256, examples=["correct horse battery"])
    new_password: str = Field(min_length=8, max_length=256, examples=["staple horse battery"])


class PasswordReset(Strict):
    new_password: str = Field(min_length=8, max_length=256, examples=["staple horse battery"])


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: str


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ProductCreate(Strict):
    name: str = Field(min_length=1, max_length=200, examples=["Red running shoe"])
    description: str = Field(default="", max_length=5000)
    category: str = Field(min_length=1, max_length=100, examples=["shoes"])
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS, examples=[4999])
    initial_stock: int = Field(default=0, ge=0, le=1_000_000_000, examples=[25])


class ProductReplace(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    category: str = Field(min_length=1, max_length=100)
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS)


class ProductPatchIn(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    category: str | None = Field(default=None, min_length=1, max_length=100)
    price_cents: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)


class ProductOut(BaseModel):
    id: str
    seller_id: str
    name: str
    description: str
    category: str
    price_cents: int
    version: int
    active: bool


_PRODUCT_JSON: dict[tuple[str, int], bytes] = {}
_PRODUCT_JSON_LIMIT = 10_000


def product_json(product: Product) -> bytes:
    """A product's ``ProductOut`` JSON, serialized once per (id, version) in this process.

    Every change of a product bumps its version, so a cached body is never stale. The hottest
    read serves the same few products over and over; this keeps pydantic off that path.
    """
    key = (product.id, product.version)
    body = _PRODUCT_JSON.get(key)
    if body is None:
        if len(_PRODUCT_JSON) >= _PRODUCT_JSON_LIMIT:
            _PRODUCT_JSON.clear()
        body = ProductOut.model_validate(product, from_attributes=True).model_dump_json().encode()
        _PRODUCT_JSON[key] = body
    return body


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None


class StockOut(BaseModel):
    product_id: str
    available: int
    reserved: int
    sold: int | None = Field(
        default=None, description="Units sold: only for the product's seller and admins"
    )
    stocked: int | None = Field(
        default=None, description="Units ever stocked: only for the product's seller and admins"
    )


class StockDelta(Strict):
    delta: int = Field(ge=-1_000_000_000, le=1_000_000_000, examples=[10])


class CartQuantity(Strict):
    quantity: int = Field(ge=0, le=MAX_LINE_QUANTITY, examples=[2])


class CartItemOut(BaseModel):
    product_id: str
    quantity: int
    unit_price_cents: int = Field(
        description="The product's price when the line was set", examples=[1200]
    )
    product_version: int = Field(
        description="The product's version when the line was set", examples=[1]
    )
    current_price_cents: int = Field(
        description="The product's price now, read from the catalog with the cart",
        examples=[1500],
    )
    current_version: int = Field(description="The product's version now", examples=[2])
    price_changed: bool = Field(
        description="current_price_cents differs from unit_price_cents", examples=[True]
    )
    available: bool = Field(
        description="The product is still for sale (a checkout with an unavailable line "
        "ends cancelled, product_unavailable)",
        examples=[True],
    )


class CartOut(BaseModel):
    items: list[CartItemOut]
    total_cents: int = Field(description="The lines at the prices they were set at")
    current_total_cents: int = Field(
        description="The lines at the current prices: what a checkout of the cart charges "
        "now; send it as the checkout's expected_total_cents"
    )
    price_changed: bool = Field(description="Some line's price moved since it was set")


class OrderLineIn(Strict):
    product_id: str = Field(max_length=40)
    quantity: int = Field(ge=1, le=MAX_LINE_QUANTITY)


class PaymentIn(Strict):
    card_token: str = Field(min_length=1, max_length=100, examples=["tok_visa"])


class AddressIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    zip: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")


class OrderCreate(Strict):
    items: list[OrderLineIn] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    payment: PaymentIn
    shipping_address: AddressIn
    expected_total_cents: int | None = Field(
        default=None,
        ge=0,
        le=10**15,
        description="The total the buyer was shown (for a checkout of the cart, the cart's "
        "current_total_cents); if prices moved since, 409 price_changed with the new items and "
        "total, and nothing is ordered",
    )


class OrderItemOut(BaseModel):
    product_id: str
    seller_id: str
    quantity: int
    unit_price_cents: int = Field(description="The price the line was charged at")
    product_version: int
    shown_unit_price_cents: int | None = Field(
        default=None,
        description="The price the buyer's cart held for the line when the order checked out "
        "the cart (items omitted); differs from unit_price_cents when the price moved since "
        "the line went into the cart. Null when the checkout named its items (no price was "
        "shown) and in orders placed before this field existed",
        examples=[1200],
    )


class OrderOut(BaseModel):
    id: str
    buyer_id: str
    status: str
    failure_reason: str | None
    items: list[OrderItemOut]
    total_cents: int
    created_at: str


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class PackageOut(BaseModel):
    seller_id: str
    items: list[dict[str, int | str]]
    status: str


class ShipmentOut(BaseModel):
    id: str
    order_id: str
    status: str
    packages: list[PackageOut]


class ShipmentMove(Strict):
    status: Literal["shipped", "delivered"]


class DashboardOut(BaseModel):
    seller_id: str
    orders_count: int
    items_sold: int
    revenue_cents: int
    open_orders: int
    as_of: str | None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
