"""The synthetic market generator: Zipf weights, determinism, picking, the manifest, seeding."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy.pool import QueuePool
from typer.testing import CliRunner

from marketplace.cli import app
from marketplace.cli import seed as seed_cli
from marketplace.config import mask_url
from marketplace.domain.catalog import Product, ProductDraft, tokenize
from marketplace.domain.errors import Conflict
from marketplace.domain.ids import is_id, new_id
from marketplace.domain.users import Principal, Role, User
from marketplace.passwords import verify_password
from marketplace.sim.manifest import SeedManifest, load_manifest
from marketplace.sim.market import CATEGORIES, generate_market, zipf_weights
from marketplace.sim.seed import seed_market
from marketplace.store.engine import create_engine
from marketplace.store.users import UserStore

pytestmark = pytest.mark.unit


def test_zipf_weights_decrease_and_sum_to_one() -> None:
    weights = zipf_weights(100, 1.1)
    assert len(weights) == 100
    assert all(a > b for a, b in pairwise(weights))
    assert sum(weights) == pytest.approx(1.0)
    # rank r has weight proportional to 1 / (r + 1) ** s
    assert weights[0] / weights[9] == pytest.approx(10**1.1)


def test_zipf_exponent_zero_is_uniform_and_larger_is_more_skewed() -> None:
    assert zipf_weights(4, 0.0) == pytest.approx([0.25] * 4)
    assert zipf_weights(50, 2.0)[0] > zipf_weights(50, 1.1)[0] > zipf_weights(50, 0.5)[0]
    assert zipf_weights(0) == []
    with pytest.raises(ValueError):
        zipf_weights(3, -1.0)


def test_market_weights_follow_product_rank() -> None:
    market = generate_market(3, sellers=4, products=60, buyers=5, zipf=1.3)
    assert [p.rank for p in market.products] == list(range(60))
    assert market.weights == pytest.approx(zipf_weights(60, 1.3))
    assert all(a > b for a, b in pairwise(market.weights))


def test_same_seed_same_market_other_seed_other_market() -> None:
    a = generate_market(11, sellers=3, products=40, buyers=7)
    b = generate_market(11, sellers=3, products=40, buyers=7)
    c = generate_market(12, sellers=3, products=40, buyers=7)
    assert a == b
    assert [p.product_id for p in a.products] != [p.product_id for p in c.products]
    assert [p.name for p in a.products] != [p.name for p in c.products]
    assert {u.email for u in a.sellers + a.buyers}.isdisjoint(u.email for u in c.sellers + c.buyers)


def test_a_product_does_not_depend_on_how_many_products_there_are() -> None:
    small = generate_market(5, sellers=3, products=10, buyers=0)
    large = generate_market(5, sellers=3, products=30, buyers=0)
    for p, q in zip(small.products, large.products[:10], strict=True):
        assert (p.product_id, p.name, p.price_cents, p.stock, p.seller_index) == (
            q.product_id,
            q.name,
            q.price_cents,
            q.stock,
            q.seller_index,
        )


def test_products_are_valid_and_searchable() -> None:
    market = generate_market(7, sellers=5, products=200, buyers=50, stock_min=3, stock_max=9)
    assert len(market.sellers) == 5 and len(market.buyers) == 50 and len(market.products) == 200
    assert {u.role for u in market.sellers} == {Role.SELLER}
    assert {u.role for u in market.buyers} == {Role.BUYER}
    assert len({u.email for u in market.sellers + market.buyers}) == 55
    assert len({p.product_id for p in market.products}) == 200
    for product in market.products:
        assert is_id(product.product_id, "prd")
        assert 0 <= product.seller_index < 5
        assert 3 <= product.stock <= 9
        nouns, low, high = CATEGORIES[product.category]
        assert low <= product.price_cents <= high
        assert isinstance(product.price_cents, int)
        draft = product.draft()  # validates against the domain's limits
        assert isinstance(draft, ProductDraft)
        # the category's noun is in the name, so a search for it finds the product
        assert any(set(tokenize(noun)) <= set(tokenize(product.name)) for noun in nouns)
        assert product.category in tokenize(product.description)
    assert len(market.categories) >= 8  # 200 products cover nearly every category
    assert len({p.seller_index for p in market.products}) == 5
    assert market.total_stock == sum(p.stock for p in market.products)


def test_pick_products_prefers_popular_ones() -> None:
    market = generate_market(1, sellers=2, products=50, buyers=0, zipf=1.1)
    picks = market.pick_products(random.Random(42), 20_000)
    counts = Counter(p.rank for p in picks)
    assert counts[0] > counts[1] > counts[10]
    assert counts[0] / 20_000 == pytest.approx(market.weights[0], rel=0.1)
    # a seeded rng gives the same picks
    again = market.pick_products(random.Random(42), 100)
    assert again == market.pick_products(random.Random(42), 100)
    assert market.pick_product(random.Random(42)) == again[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sellers": -1},
        {"sellers": 0, "products": 1},
        {"stock_min": 5, "stock_max": 4},
        {"stock_min": -1},
        {"zipf": -0.5},
        {"password": "short"},
    ],
)
def test_generator_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_market(1, **kwargs)


def test_empty_market_is_allowed_but_cannot_pick() -> None:
    market = generate_market(1, sellers=0, products=0, buyers=0)
    assert market.products == () and market.weights == []
    with pytest.raises(ValueError):
        market.pick_products(random.Random(0), 1)


def test_mask_url_hides_the_password() -> None:
    assert "s3cret" not in mask_url("postgresql+asyncpg://app:s3cret@db:5432/mkt")
    assert mask_url("sqlite+aiosqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"


# -- seed_market against a fake client (no Ray, no database) ----------------------------------


class FakeUsers:
    """Enough of UserStore for seeding: register with a given hash, look up by email; counts
    the calls in flight, as connections taken from a pool of ``pool`` would be."""

    def __init__(self, pool: int = 16) -> None:
        self.by_mail: dict[str, User] = {}
        self.hashes: set[str] = set()
        self.pool = pool
        self.in_flight = 0
        self.most_in_flight = 0

    def bulk_concurrency(self) -> int:
        return self.pool - 1

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[None]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the other registrations run meanwhile
            yield
        finally:
            self.in_flight -= 1

    async def register(
        self, email: str, password: str, name: str, role: Role, *, password_hash: str | None = None
    ) -> User:
        async with self._connection():
            return self._register(email, name, role, password_hash)

    def _register(self, email: str, name: str, role: Role, password_hash: str | None) -> User:
        assert password_hash is not None, "seeding must not hash per user"
        self.hashes.add(password_hash)
        if email in self.by_mail:
            raise Conflict("a user with this email exists", field="email")
        user = User(
            id=new_id("usr"), email=email, name=name, role=role, password_hash=password_hash
        )
        self.by_mail[email] = user
        return user

    async def by_email(self, email: str) -> User | None:
        async with self._connection():
            return self.by_mail.get(email)


class FakeClient:
    def __init__(self) -> None:
        self.users = FakeUsers()
        self.products: dict[str, Product] = {}
        self.stock: dict[str, int] = {}

    async def create_product(
        self,
        seller: Principal,
        draft: ProductDraft,
        initial_stock: int = 0,
        *,
        product_id: str | None = None,
    ) -> Product:
        assert product_id is not None and seller.role is Role.SELLER
        existing = self.products.get(product_id)
        if existing is not None:
            return existing
        product = Product(
            id=product_id, seller_id=seller.id, version=1, active=True, **draft.model_dump()
        )
        self.products[product_id] = product
        self.stock[product_id] = initial_stock
        return product


async def test_seed_market_registers_lists_and_writes_the_manifest(tmp_path: Path) -> None:
    market = generate_market(9, sellers=3, products=25, buyers=6)
    client = FakeClient()
    seen: list[tuple[str, int, int]] = []
    path = tmp_path / "nested" / "seed.json"
    manifest = await seed_market(
        client,  # type: ignore[arg-type]
        market,
        concurrency=4,
        progress=lambda phase, done, total: seen.append((phase, done, total)),
        manifest_path=path,
        namespace="ns",
        database_url="postgresql+asyncpg://app:s3cret@db/mkt",
    )
    # one hash for everybody, and it verifies against the shared password
    assert len(client.users.hashes) == 1
    assert verify_password(next(iter(client.users.hashes)), market.password)
    assert len(client.users.by_mail) == 9
    assert set(client.products) == {p.product_id for p in market.products}
    assert client.stock == {p.product_id: p.stock for p in market.products}
    sellers = {u.email: u.id for u in manifest.sellers}
    for spec, listed in zip(market.products, manifest.products, strict=True):
        assert listed.id == spec.product_id and listed.weight == spec.weight
        assert listed.seller_id == sellers[market.sellers[spec.seller_index].email]
    # progress counts every user and product, ending at the total
    assert seen[0] == ("users", 0, 34) and seen[-1] == ("products", 34, 34)
    assert [done for _, done, _ in seen] == list(range(35))
    # the manifest on disk is what was returned, with the password of the database masked
    loaded = load_manifest(path)
    assert loaded == manifest
    assert isinstance(loaded, SeedManifest)
    assert loaded.database_url is not None and "s3cret" not in loaded.database_url
    assert loaded.password == market.password
    assert loaded.seller_emails == [u.email for u in market.sellers]
    assert loaded.buyer_emails == [u.email for u in market.buyers]
    assert loaded.categories == market.categories
    assert loaded.weights == pytest.approx(market.weights)
    picks = loaded.pick_products(random.Random(3), 2000)
    assert Counter(p.id for p in picks).most_common(1)[0][0] == market.products[0].product_id


async def test_seeding_twice_reuses_users_and_products(tmp_path: Path) -> None:
    market = generate_market(4, sellers=2, products=8, buyers=3)
    client = FakeClient()
    first = await seed_market(client, market, manifest_path=tmp_path / "a.json")  # type: ignore[arg-type]
    second = await seed_market(client, market, manifest_path=tmp_path / "b.json")  # type: ignore[arg-type]
    assert [u.id for u in first.sellers + first.buyers] == [
        u.id for u in second.sellers + second.buyers
    ]
    assert [p.id for p in first.products] == [p.id for p in second.products]
    assert len(client.products) == 8


async def test_seeding_refuses_an_email_taken_with_another_role(tmp_path: Path) -> None:
    market = generate_market(4, sellers=1, products=1, buyers=0)
    client = FakeClient()
    await client.users.register(
        market.sellers[0].email, "whatever-pass", "Someone", Role.BUYER, password_hash="h"
    )
    with pytest.raises(Conflict, match="exists as a buyer"):
        await seed_market(client, market, manifest_path=tmp_path / "seed.json")  # type: ignore[arg-type]
    assert not (tmp_path / "seed.json").exists()


async def test_registrations_in_flight_stay_below_the_user_stores_pool(tmp_path: Path) -> None:
    market = generate_market(5, sellers=4, products=4, buyers=40)
    client = FakeClient()
    client.users = FakeUsers(pool=4)
    await seed_market(client, market, concurrency=32, manifest_path=tmp_path / "seed.json")  # type: ignore[arg-type]
    assert len(client.users.by_mail) == 44
    assert client.users.most_in_flight == 3


def test_a_pool_timeout_is_a_clear_cli_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def times_out(*_: Any) -> SeedManifest:
        raise sqlalchemy.exc.TimeoutError(
            "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 120.00"
        )

    monkeypatch.setattr(seed_cli, "_seed", times_out)
    result = CliRunner().invoke(app, ["seed", "--manifest", str(tmp_path / "seed.json")])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "no database connection came free in time" in result.output
    assert "--concurrency" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["sqlite:///seed.db", "postgresql://app@db/mkt"])
async def test_bulk_concurrency_is_below_the_engines_pool(url: str) -> None:
    engine = create_engine(url)  # connects to nothing until used, and is not used here
    try:
        assert isinstance(engine.pool, QueuePool)
        assert 1 <= UserStore(engine).bulk_concurrency() < engine.pool.size()
    finally:
        await engine.dispose()
