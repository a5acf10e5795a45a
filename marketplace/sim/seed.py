"""A synthetic market from one seed integer, and the code that loads it into a marketplace.

``generate_market(seed, ...)`` is pure: the same arguments always give the same sellers, buyers
and products (names, descriptions, categories, prices, stock and ids). Product popularity is
Zipf-skewed: ``market.products[r]`` has popularity rank ``r`` (0 is the most popular) and
weight proportional to ``1 / (r + 1) ** zipf``, so load tests and notebooks pick popular products
with ``market.pick_products(rng, k)``.

``await seed_market(client, market)`` registers the users and lists the products with their
initial stock through a ``MarketplaceClient`` (anything shaped like one), concurrently, and writes
a manifest JSON (default ``.marketplace/seed.json``) that ``load_manifest`` reads back. Seeding is
idempotent: users that exist are reused (matched by email) and product ids are derived from the
seed, so running it twice with the same arguments changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy.engine import make_url

from marketplace.domain.catalog import Product, ProductDraft
from marketplace.domain.errors import Conflict
from marketplace.domain.users import Principal, Role, User
from marketplace.passwords import hash_password
from marketplace.store.users import UserStore

DEFAULT_PASSWORD = "seeded-market-password"
DEFAULT_ZIPF = 1.1
MANIFEST_VERSION = 1
EMAIL_DOMAIN = "seed.marketplace.test"
T = TypeVar("T")
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


# -- the pure generator -----------------------------------------------------------------------


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


# -- the manifest -----------------------------------------------------------------------------


class ManifestUser(BaseModel):
    """A seeded user as registered."""

    id: str
    email: str
    name: str
    role: Role


class ManifestProduct(BaseModel):
    """A seeded product as listed, with its popularity weight."""

    id: str
    seller_id: str
    name: str
    category: str
    price_cents: int
    stock: int
    weight: float


class SeedManifest(BaseModel, Popularity[ManifestProduct]):
    """What ``seed_market`` made: enough for load tests and notebooks to act as these users."""

    version: int = MANIFEST_VERSION
    seed: int
    zipf: float
    seeded_at: datetime
    namespace: str | None = None
    database_url: str | None = None  # password masked
    password: str
    sellers: list[ManifestUser]
    buyers: list[ManifestUser]
    products: list[ManifestProduct]  # by popularity rank, most popular first
    categories: list[str]

    @property
    def seller_emails(self) -> list[str]:
        """Every seeded seller's email."""
        return [user.email for user in self.sellers]

    @property
    def buyer_emails(self) -> list[str]:
        """Every seeded buyer's email."""
        return [user.email for user in self.buyers]


def default_manifest_path() -> Path:
    """``.marketplace/seed.json`` under the working directory."""
    return Path.cwd() / ".marketplace" / "seed.json"


def write_manifest(manifest: SeedManifest, path: str | Path | None = None) -> Path:
    """Write ``manifest`` as JSON (atomically); returns the path."""
    target = Path(path) if path is not None else default_manifest_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".tmp")
    scratch.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    scratch.replace(target)
    return target


def load_manifest(path: str | Path | None = None) -> SeedManifest:
    """Read a manifest written by ``seed_market`` (default ``.marketplace/seed.json``)."""
    source = Path(path) if path is not None else default_manifest_path()
    return SeedManifest.model_validate_json(source.read_text(encoding="utf-8"))


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


# -- loading a market into a marketplace ------------------------------------------------------

ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase is "users" or "products"; done/total count both."""


class SeedClient(Protocol):
    """What ``seed_market`` needs of a ``MarketplaceClient``."""

    users: UserStore

    async def create_product(
        self,
        seller: Principal,
        draft: ProductDraft,
        initial_stock: int = 0,
        *,
        product_id: str | None = None,
    ) -> Product: ...


async def seed_market(
    client: SeedClient,
    market: SyntheticMarket,
    *,
    concurrency: int = 32,
    progress: ProgressCallback | None = None,
    manifest_path: str | Path | None = None,
    write: bool = True,
    namespace: str | None = None,
    database_url: str | None = None,
) -> SeedManifest:
    """Register ``market``'s users and list its products with their stock, ``concurrency``
    requests at a time; write the manifest (unless ``write`` is False) and return it.

    One argon2 hash of the shared password serves every seeded user. Users that exist already
    (same email and role) are reused; a product that exists already is left as it is.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    gate = asyncio.Semaphore(concurrency)
    total = len(market.sellers) + len(market.buyers) + len(market.products)
    done = 0

    def advance(phase: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(phase, done, total)

    if progress is not None:
        progress("users", 0, total)
    password_hash = await asyncio.to_thread(hash_password, market.password)

    async def register(spec: SeedUser) -> User:
        async with gate:
            user = await _register_or_reuse(client.users, spec, market.password, password_hash)
        advance("users")
        return user

    users = await _all([register(spec) for spec in market.sellers + market.buyers])
    sellers, buyers = users[: len(market.sellers)], users[len(market.sellers) :]

    async def list_product(spec: SeedProduct) -> Product:
        seller = sellers[spec.seller_index]
        async with gate:
            product = await client.create_product(
                Principal(id=seller.id, role=seller.role),
                spec.draft(),
                spec.stock,
                product_id=spec.product_id,
            )
        advance("products")
        return product

    listed = await _all([list_product(spec) for spec in market.products])

    manifest = SeedManifest(
        seed=market.seed,
        zipf=market.zipf,
        seeded_at=datetime.now(UTC),
        namespace=namespace,
        database_url=mask_url(database_url) if database_url else None,
        password=market.password,
        sellers=_manifest_users(sellers),
        buyers=_manifest_users(buyers),
        products=[
            ManifestProduct(
                id=product.id,
                seller_id=product.seller_id,
                name=product.name,
                category=product.category,
                price_cents=product.price_cents,
                stock=spec.stock,
                weight=spec.weight,
            )
            for spec, product in zip(market.products, listed, strict=True)
        ],
        categories=market.categories,
    )
    if write:
        write_manifest(manifest, manifest_path)
    return manifest


async def _all(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run every coroutine; on the first failure cancel the rest and raise that failure."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


async def _register_or_reuse(
    users: UserStore, spec: SeedUser, password: str, password_hash: str
) -> User:
    try:
        return await users.register(
            spec.email, password, spec.name, spec.role, password_hash=password_hash
        )
    except Conflict:
        existing = await users.by_email(spec.email)
        if existing is None:
            raise
        if existing.role is not spec.role:
            raise Conflict(
                f"{spec.email} exists as a {existing.role.value}, not a {spec.role.value}",
                field="email",
            ) from None
        return existing


def _manifest_users(users: Sequence[User]) -> list[ManifestUser]:
    return [
        ManifestUser(id=user.id, email=user.email, name=user.name, role=user.role) for user in users
    ]


def summarize(manifest: SeedManifest, top: int = 5) -> dict[str, Any]:
    """Headline figures of a seeded market (for printing)."""
    return {
        "sellers": len(manifest.sellers),
        "buyers": len(manifest.buyers),
        "products": len(manifest.products),
        "categories": len(manifest.categories),
        "total_stock": sum(product.stock for product in manifest.products),
        "top_products": [
            (product.name, round(product.weight, 4)) for product in manifest.products[:top]
        ],
    }
