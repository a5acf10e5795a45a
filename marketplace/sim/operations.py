"""The operations a simulated market intends to perform, one frozen dataclass per kind.

An operation is an intent, not a request: it names its actor (a buyer's or seller's email from
the ``SyntheticMarket``, or a carrier id from ``behaviours.carrier_ids``) and what it wants done,
and a runner's ``Target`` turns it into client or HTTP calls. Ids the generator cannot know ahead
of time (carts, orders, shipments) are left for the target to resolve: ``Checkout`` checks out
whatever the customer's cart holds, ``MoveShipment`` advances the oldest undelivered shipment the
carrier knows. Each class has a ``kind`` string that traces and summaries group by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

MAX_QUANTITY = 10


@dataclass(frozen=True, slots=True)
class Browse:
    """A customer opens a product's page."""

    kind: ClassVar[str] = "browse"
    customer: str
    product_id: str


@dataclass(frozen=True, slots=True)
class Search:
    """A customer searches the catalog for ``query``, optionally within ``category``."""

    kind: ClassVar[str] = "search"
    customer: str
    query: str
    category: str | None = None


@dataclass(frozen=True, slots=True)
class AddToCart:
    """A customer puts ``quantity`` (1 to 10) units of a product in their cart."""

    kind: ClassVar[str] = "add_to_cart"
    customer: str
    product_id: str
    quantity: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity must be 1 to {MAX_QUANTITY}, got {self.quantity}")


@dataclass(frozen=True, slots=True)
class Checkout:
    """A customer checks out their cart; retrying with the same key must not charge twice."""

    kind: ClassVar[str] = "checkout"
    customer: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class AbandonCart:
    """A customer leaves with items in the cart (the target may clear it or leave it be)."""

    kind: ClassVar[str] = "abandon_cart"
    customer: str


@dataclass(frozen=True, slots=True)
class ReadDashboard:
    """A seller reads their sales dashboard."""

    kind: ClassVar[str] = "read_dashboard"
    seller: str


@dataclass(frozen=True, slots=True)
class UpdatePrice:
    """A seller sets one of their products' price, in cents."""

    kind: ClassVar[str] = "update_price"
    seller: str
    product_id: str
    price_cents: int

    def __post_init__(self) -> None:
        if self.price_cents <= 0:
            raise ValueError("price_cents must be > 0")


@dataclass(frozen=True, slots=True)
class UpdateProduct:
    """A seller rewrites one of their products' description."""

    kind: ClassVar[str] = "update_product"
    seller: str
    product_id: str
    description: str


@dataclass(frozen=True, slots=True)
class Restock:
    """A seller adds ``delta`` units (> 0) to one of their products' stock."""

    kind: ClassVar[str] = "restock"
    seller: str
    product_id: str
    delta: int

    def __post_init__(self) -> None:
        if self.delta <= 0:
            raise ValueError("delta must be > 0")


@dataclass(frozen=True, slots=True)
class MoveShipment:
    """A carrier advances the oldest undelivered shipment it knows by one step (ship, then
    deliver). The generator cannot know order ids, so the target picks the shipment."""

    kind: ClassVar[str] = "move_shipment"
    carrier: str


Operation = (
    Browse
    | Search
    | AddToCart
    | Checkout
    | AbandonCart
    | ReadDashboard
    | UpdatePrice
    | UpdateProduct
    | Restock
    | MoveShipment
)
"""Any operation the simulator generates."""

OPERATION_KINDS: tuple[str, ...] = (
    Browse.kind,
    Search.kind,
    AddToCart.kind,
    Checkout.kind,
    AbandonCart.kind,
    ReadDashboard.kind,
    UpdatePrice.kind,
    UpdateProduct.kind,
    Restock.kind,
    MoveShipment.kind,
)


def actor_of(op: Operation) -> str:
    """The id of whoever performs ``op`` (customer, seller or carrier)."""
    match op:
        case Browse() | Search() | AddToCart() | Checkout() | AbandonCart():
            return op.customer
        case ReadDashboard() | UpdatePrice() | UpdateProduct() | Restock():
            return op.seller
        case MoveShipment():
            return op.carrier


def session_of(op: Operation) -> str | None:
    """The customer whose session ``op`` belongs to, or None for a seller's or carrier's.

    A customer's operations depend on each other (a checkout takes what the add-to-carts put in
    the cart), so the loops run them in order. A seller's or carrier's do not (each price update
    or shipment move stands alone; a carrier is a fleet, not one driver), so they overlap freely.
    """
    match op:
        case Browse() | Search() | AddToCart() | Checkout() | AbandonCart():
            return op.customer
        case _:
            return None
