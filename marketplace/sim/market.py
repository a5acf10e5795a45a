"""A synthetic market from one seed integer: sellers, buyers and products with stock.

``generate_market(seed, ...)`` is pure: the same arguments always give the same sellers, buyers
and products (names, descriptions, categories, prices, stock and ids). Product popularity is
Zipf-skewed: ``market.products[r]`` has popularity rank ``r`` (0 is the most popular) and
weight proportional to ``1 / (r + 1) ** zipf``, so load tests and notebooks pick popular products
with ``market.pick_products(rng, k)``. ``marketplace.sim.seed`` loads a market into a marketplace.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from marketplace.domain.catalog import ProductDraft
from marketplace.domain.users import Role

DEFAULT_PASSWORD = "seeded-market-password"
DEFAULT_ZIPF = 1.1
EMAIL_DOMAIN = "seed.marketplace.test"
_PRODUCT_NAMESPACE = uuid.UUID("0b8f6f2c-5d1e-4c56-9a57-3f2d8e61c0a4")

# category -> (nouns, lowest price, highest price in cents)
CATEGORIES: dict[str, tuple[tuple[str, ...], int, int]] = {
    "electronics": (
        ("headphones", "speaker", "charger", "keyboard", "mouse", "monitor", "camera", "tablet"),
        1_500,
        60_000,
    ),
    "books": (
        ("novel", "cookbook", "atlas", "biography", "notebook", "guide", "anthology"),
        500,
        6_000,
    ),
    "home": (
        ("lamp", "rug", "cushion", "blanket", "clock", "mirror", "vase", "curtain"),
        900,
        25_000,
    ),
    "kitchen": (("kettle", "skillet", "knife", "blender", "mug", "teapot", "grater"), 700, 30_000),
    "garden": (
        ("shovel", "planter", "hose", "rake", "lantern", "birdhouse", "trowel"),
        600,
        20_000,
    ),
    "sports": (("football", "racket", "yoga mat", "dumbbell", "helmet", "backpack"), 1_000, 40_000),
    "toys": (("puzzle", "robot", "kite", "train set", "doll", "building blocks"), 500, 15_000),
    "clothing": (("jacket", "scarf", "sweater", "raincoat", "hat", "gloves", "socks"), 800, 35_000),
    "beauty": (("soap", "lotion", "shampoo", "perfume", "brush", "lip balm"), 300, 12_000),
    "grocery": (
        ("coffee", "tea", "honey", "olive oil", "chocolate", "granola", "pasta"),
        200,
        4_000,
    ),
}
ADJECTIVES = (
    "compact", "classic", "deluxe", "rugged", "handmade", "vintage", "modern", "portable",
    "ergonomic", "organic", "premium", "lightweight", "wireless", "eco", "cozy", "sturdy",
)  # fmt: skip
MATERIALS = (
    "bamboo", "steel", "cotton", "oak", "ceramic", "glass", "leather", "wool", "copper",
    "linen", "walnut", "recycled plastic",
)  # fmt: skip
COLORS = ("red", "blue", "green", "black", "white", "amber", "teal", "grey", "navy", "sand")
USES = (
    "everyday use", "travel", "gifts", "the office", "outdoor adventures", "small spaces",
    "beginners", "professionals", "weekend projects", "family dinners",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
    "Radia", "Tim", "Katherine", "Guido", "Hedy", "John", "Shafi", "Donald", "Sophie", "Niklaus",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
    "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Johnson", "van Rossum", "Lamarr", "Backus",
    "Goldwasser", "Knuth", "Wilson", "Wirth",
)  # fmt: skip
SHOP_WORDS = (
    "Northwind", "Harbor", "Maple", "Summit", "Copper", "Lantern", "Meadow", "Atlas", "Juniper",
    "Beacon", "Orchard", "Granite",
)  # fmt: skip
SHOP_KINDS = ("Goods", "Trading", "Supply", "Emporium", "Works", "Market", "Outfitters", "Co")


@dataclass(frozen=True)
class SeedUser:
    """A seller or buyer to register (all seeded users share the market's password)."""

    email: str
    name: str
    role: Role


@dataclass(frozen=True)
class SeedProduct:
    """A product to list. ``rank`` 0 is the most popular; ``weight`` is its share of demand."""

    rank: int
    product_id: str
    seller_index: int
    name: str
    description: str
    category: str
    price_cents: int
    stock: int
    weight: float

    def draft(self) -> ProductDraft:
        """What the seller submits to list it."""
        return ProductDraft(
            name=self.name,
            description=self.description,
            category=self.category,
            price_cents=self.price_cents,
        )


def zipf_weights(n: int, exponent: float = DEFAULT_ZIPF) -> list[float]:
    """Normalised Zipf weights ``1 / (r + 1) ** exponent`` for ranks ``r = 0 .. n-1``.

    Exponent 0 is uniform; larger exponents concentrate demand on the first ranks.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if exponent < 0:
        raise ValueError("the Zipf exponent must be >= 0")
    raw = [1.0 / (rank + 1) ** exponent for rank in range(n)]
    total = sum(raw)
    return [value / total for value in raw]


class _Weighted(Protocol):
    @property
    def weight(self) -> float: ...


W = TypeVar("W", bound=_Weighted)


class Popularity(Generic[W]):
    """Zipf-weighted draws over ``products`` (most popular first); shared by the generated
    market and the manifest that load tests and notebooks read back."""

    if TYPE_CHECKING:
        products: Sequence[W]

    @property
    def weights(self) -> list[float]:
        """Each product's share of demand, in ``products`` order (decreasing, sums to 1)."""
        return [product.weight for product in self.products]

    @cached_property
    def _cum_weights(self) -> list[float]:
        return list(itertools.accumulate(self.weights))

    def pick_products(self, rng: random.Random, k: int = 1) -> list[W]:
        """``k`` products drawn with replacement, each with probability its weight."""
        if not self.products:
            raise ValueError("there are no products to pick from")
        return rng.choices(self.products, cum_weights=self._cum_weights, k=k)


@dataclass(frozen=True)
class SyntheticMarket(Popularity[SeedProduct]):
    """Sellers, buyers and products, products ordered by popularity rank."""

    seed: int
    zipf: float
    password: str
    sellers: tuple[SeedUser, ...]
    buyers: tuple[SeedUser, ...]
    products: tuple[SeedProduct, ...]

    def pick_product(self, rng: random.Random) -> SeedProduct:
        """One product, drawn by popularity."""
        return self.pick_products(rng, 1)[0]

    @property
    def categories(self) -> list[str]:
        """The categories that have at least one product, sorted."""
        return sorted({product.category for product in self.products})

    @property
    def total_stock(self) -> int:
        """Units stocked over every product."""
        return sum(product.stock for product in self.products)


def generate_market(
    seed: int = 7,
    *,
    sellers: int = 5,
    products: int = 200,
    buyers: int = 50,
    zipf: float = DEFAULT_ZIPF,
    stock_min: int = 20,
    stock_max: int = 200,
    password: str = DEFAULT_PASSWORD,
) -> SyntheticMarket:
    """The synthetic market of ``seed``: deterministic for the same arguments.

    Each product is drawn from its own random stream (``seed`` and its rank), so product ``r``
    is the same whatever the number of products; its id also depends on the number of sellers,
    because that decides who sells it.
    """
    if sellers < 0 or products < 0 or buyers < 0:
        raise ValueError("sellers, products and buyers must be >= 0")
    if products and not sellers:
        raise ValueError("products need at least one seller")
    if not 0 <= stock_min <= stock_max:
        raise ValueError("need 0 <= stock_min <= stock_max")
    if not 8 <= len(password) <= 256:
        raise ValueError("the password must be 8 to 256 characters")
    weights = zipf_weights(products, zipf)
    shops = random.Random(f"marketplace-seed/{seed}/sellers")
    people = random.Random(f"marketplace-seed/{seed}/buyers")
    seller_list = tuple(
        SeedUser(
            email=f"seller{i:04d}.s{seed}@{EMAIL_DOMAIN}",
            name=f"{shops.choice(SHOP_WORDS)} {shops.choice(SHOP_KINDS)}",
            role=Role.SELLER,
        )
        for i in range(sellers)
    )
    buyer_list = tuple(
        SeedUser(
            email=f"buyer{i:05d}.s{seed}@{EMAIL_DOMAIN}",
            name=f"{people.choice(FIRST_NAMES)} {people.choice(LAST_NAMES)}",
            role=Role.BUYER,
        )
        for i in range(buyers)
    )
    product_list = tuple(
        _product(seed, rank, sellers, weights[rank], stock_min, stock_max)
        for rank in range(products)
    )
    return SyntheticMarket(
        seed=seed,
        zipf=zipf,
        password=password,
        sellers=seller_list,
        buyers=buyer_list,
        products=product_list,
    )


def _product(
    seed: int, rank: int, sellers: int, weight: float, stock_min: int, stock_max: int
) -> SeedProduct:
    rng = random.Random(f"marketplace-seed/{seed}/product/{rank}")
    category = rng.choice(sorted(CATEGORIES))
    nouns, low, high = CATEGORIES[category]
    noun = rng.choice(nouns)
    adjective = rng.choice(ADJECTIVES)
    material = rng.choice(MATERIALS)
    color = rng.choice(COLORS)
    use = rng.choice(USES)
    extra = rng.choice([a for a in ADJECTIVES if a != adjective])
    name = f"{adjective.capitalize()} {material} {noun}"
    description = (
        f"A {extra} {color} {noun} made of {material}, ideal for {use}. "
        f"Part of our {category} range."
    )
    price_cents = min(max(rng.randint(low, high) // 100 * 100 + 99, low), high)
    stock = rng.randint(stock_min, stock_max)
    seller_index = rng.randrange(sellers)
    product_id = "prd_" + uuid.uuid5(_PRODUCT_NAMESPACE, f"{seed}/{sellers}/{rank}").hex
    return SeedProduct(
        rank=rank,
        product_id=product_id,
        seller_index=seller_index,
        name=name,
        description=description,
        category=category,
        price_cents=price_cents,
        stock=stock,
        weight=weight,
    )
