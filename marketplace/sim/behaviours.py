"""Seeded behaviours: each function turns a ``random.Random`` and a market into operations.

``customer_session`` browses, maybe searches, fills a cart and checks out or abandons;
``seller_action`` updates a price, rewrites a description, restocks or reads the dashboard;
``carrier_action`` moves a shipment. ``ProductPicker`` draws products by popularity, with a
``FlashWindow`` multiplying one product's demand while it is open. All randomness comes from the
``rng`` passed in and time is an argument, so the same seed always gives the same operations.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from enum import StrEnum

from marketplace.sim.market import EMAIL_DOMAIN, SeedProduct, SyntheticMarket, zipf_weights
from marketplace.sim.operations import (
    AbandonCart,
    AddToCart,
    Browse,
    Checkout,
    MoveShipment,
    Operation,
    ReadDashboard,
    Restock,
    Search,
    UpdatePrice,
    UpdateProduct,
)
from marketplace.sim.presets import FlashWindow, SessionShape


class SellerAction(StrEnum):
    """What a seller does in one ``seller_action``."""

    DASHBOARD = "dashboard"
    PRICE_UPDATE = "price_update"
    PRODUCT_UPDATE = "product_update"
    RESTOCK = "restock"


def carrier_ids(market: SyntheticMarket, count: int) -> list[str]:
    """Ids for ``count`` carriers, in the style of the market's seeded emails.

    The market generator makes no carriers (admins create them), so the simulator names its own.
    """
    return [f"carrier{i:02d}.s{market.seed}@{EMAIL_DOMAIN}" for i in range(count)]


class ProductPicker:
    """Draws products by Zipf popularity rank, optionally with a flash sale.

    ``zipf`` None uses the market's own weights. While ``flash`` is active, the product of rank
    ``flash.rank`` weighs ``flash.multiplier`` times its usual weight (the others keep theirs, so
    its share rises and theirs fall a little).
    """

    def __init__(
        self, market: SyntheticMarket, zipf: float | None = None, flash: FlashWindow | None = None
    ) -> None:
        if not market.products:
            raise ValueError("the market has no products to pick from")
        if flash is not None and flash.rank >= len(market.products):
            raise ValueError(f"flash rank {flash.rank} is beyond the market's products")
        self.products: Sequence[SeedProduct] = market.products
        weights = market.weights if zipf is None else zipf_weights(len(market.products), zipf)
        self.flash = flash
        # Cumulative weights once, for both regimes: rng.choices then costs a bisection per pick.
        self._cum = list(itertools.accumulate(weights))
        if flash is None:
            self._flash_cum = self._cum
        else:
            boosted = list(weights)
            boosted[flash.rank] *= flash.multiplier
            self._flash_cum = list(itertools.accumulate(boosted))

    def pick(self, rng: random.Random, t: float = 0.0) -> SeedProduct:
        """One product for an operation at ``t`` seconds into the run."""
        active = self.flash is not None and self.flash.active(t)
        cum = self._flash_cum if active else self._cum
        return rng.choices(self.products, cum_weights=cum, k=1)[0]


def customer_session(
    rng: random.Random,
    market: SyntheticMarket,
    picker: ProductPicker,
    shape: SessionShape,
    t: float = 0.0,
) -> list[Operation]:
    """One customer's session started at ``t``: browse, maybe search, add to the cart, then
    ``Checkout`` with probability ``shape.checkout_probability`` or else ``AbandonCart``."""
    if not market.buyers:
        raise ValueError("the market has no buyers for customer sessions")
    customer = rng.choice(market.buyers).email
    ops: list[Operation] = []
    if rng.random() < shape.search_probability:
        product = picker.pick(rng, t)
        # Search as a shopper would: a word of the name, within the product's category.
        ops.append(Search(customer, rng.choice(product.name.split()).lower(), product.category))
    for _ in range(rng.randint(*shape.browses)):
        ops.append(Browse(customer, picker.pick(rng, t).product_id))
    for _ in range(rng.randint(*shape.cart_lines)):
        quantity = rng.randint(1, shape.max_quantity)
        ops.append(AddToCart(customer, picker.pick(rng, t).product_id, quantity))
    if rng.random() < shape.checkout_probability:
        # Drawn from the rng, not uuid4: the same seed must give the same keys.
        ops.append(Checkout(customer, f"sim-{rng.getrandbits(64):016x}"))
    else:
        ops.append(AbandonCart(customer))
    return ops


def seller_action(
    rng: random.Random,
    market: SyntheticMarket,
    picker: ProductPicker,
    action: SellerAction,
    t: float = 0.0,
) -> Operation:
    """One seller operation. Product actions pick a product by popularity (sellers tend to the
    products that sell) and are done by the product's own seller."""
    if not market.sellers:
        raise ValueError("the market has no sellers")
    if action is SellerAction.DASHBOARD:
        return ReadDashboard(rng.choice(market.sellers).email)
    product = picker.pick(rng, t)
    seller = market.sellers[product.seller_index].email
    if action is SellerAction.PRICE_UPDATE:
        # Within 20% of the listed price, kept on the market's ".99" price points. The
        # generator does not track earlier updates, so prices wander around the listed one.
        factor = rng.uniform(0.8, 1.2)
        price = max(99, int(product.price_cents * factor) // 100 * 100 + 99)
        return UpdatePrice(seller, product.product_id, price)
    if action is SellerAction.PRODUCT_UPDATE:
        revision = rng.randrange(1_000_000)
        description = f"{product.description} Revised listing {revision:06d}."
        return UpdateProduct(seller, product.product_id, description)
    return Restock(seller, product.product_id, rng.randint(10, 100))


def carrier_action(rng: random.Random, carriers: Sequence[str]) -> MoveShipment:
    """A random carrier moves its oldest undelivered shipment (resolved by the target)."""
    if not carriers:
        raise ValueError("there are no carriers")
    return MoveShipment(rng.choice(carriers))
