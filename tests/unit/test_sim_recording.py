"""Recording a simulation's product reads and writes (``marketplace.sim.recording``): a short
open-loop run over HTTP against a scripted linearizable catalog records a history the strong
checker accepts, and one against a catalog answering reads from a lagging copy is caught;
refusals record failed writes and 5xx or lost answers unknown ones, over HTTP and through the
client."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from marketplace.consistency import AnomalyKind, History, Kind, Mode, Outcome, check
from marketplace.domain.errors import NotFound
from marketplace.domain.session_token import HEADER, CatalogSession
from marketplace.domain.users import Role
from marketplace.sim.arrivals import poisson
from marketplace.sim.client_target import ClientTarget
from marketplace.sim.http_seed import HttpMarket
from marketplace.sim.http_target import HttpTarget
from marketplace.sim.loops import run_open
from marketplace.sim.manifest import ManifestUser, SeedManifest
from marketplace.sim.market import SyntheticMarket, generate_market
from marketplace.sim.operations import Browse, Search, UpdatePrice, UpdateProduct
from marketplace.sim.presets import Activity, Preset
from marketplace.sim.recording import verdict_summary
from marketplace.sim.workload import Workload

pytestmark = pytest.mark.unit

MARKET = generate_market(3, sellers=2, products=5, buyers=10)
SELLER = MARKET.sellers[0].email
BUYERS = [buyer.email for buyer in MARKET.buyers]
PRODUCT = next(p.product_id for p in MARKET.products if p.seller_index == 0)
# Few products, many writes: reads and writes of one product overlap often.
CONTENDED = Preset(
    name="contended",
    description="sessions and many price and product updates",
    mix={Activity.SESSION: 0.3, Activity.PRICE_UPDATE: 0.4, Activity.PRODUCT_UPDATE: 0.3},
)


class Catalog:
    """A scripted gateway: product reads and writes on one register per product, each taking
    effect at a random point of its request (linearizable); with ``lag_s`` reads answer from a
    copy that sees each write that much later. Every other request gets a plain answer."""

    def __init__(self, *, lag_s: float = 0.0, seed: int = 0) -> None:
        self.versions: dict[str, int] = {}
        self.copy: dict[str, int] = {}
        self.lag_s = lag_s
        self.rng = random.Random(seed)
        self.write_status = 200

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        await asyncio.sleep(self.rng.random() * 0.002)
        if path.startswith("/v1/products/") and path.count("/") == 3:
            product = path.rsplit("/", 1)[1]
            if request.method == "PATCH":
                if self.write_status != 200:
                    return httpx.Response(self.write_status, content=b"{}")
                version = self.versions[product] = self.versions.get(product, 1) + 1
                asyncio.get_running_loop().call_later(self.lag_s, self._catch_up, product, version)
            else:
                source = self.copy if self.lag_s else self.versions
                version = source.get(product, 1)
            await asyncio.sleep(self.rng.random() * 0.002)
            body = orjson.dumps({"id": product, "version": version})
            return httpx.Response(200, content=body, headers={"ETag": f'"{version}"'})
        if path == "/v1/orders":
            body = orjson.dumps({"id": "ord_x", "status": "cancelled", "failure_reason": "x"})
            return httpx.Response(201, content=body)
        return httpx.Response(200, content=b"{}")

    def _catch_up(self, product: str, version: int) -> None:
        self.copy[product] = max(self.copy.get(product, 1), version)


def http_target(catalog: Catalog, market: SyntheticMarket, history: History) -> HttpTarget:
    emails = [user.email for user in (*market.sellers, *market.buyers)]
    http_market = HttpMarket(
        base_url="http://sim.test",
        password=market.password,
        tokens={email: f"tok-{email}" for email in emails},
        product_ids={p.product_id: p.product_id for p in market.products},
    )
    transport = httpx.MockTransport(catalog)
    http = httpx.AsyncClient(base_url=http_market.base_url, transport=transport)
    return HttpTarget(http_market, http=http, history=history)


@pytest.mark.parametrize("lag_s", [0.0, 0.05])
async def test_a_short_run_records_a_history_the_checker_judges(lag_s: float) -> None:
    history = History()
    target = http_target(Catalog(lag_s=lag_s, seed=1), MARKET, history)
    workload = Workload(MARKET, CONTENDED, random.Random(2))
    schedule = poisson(random.Random(3), rate=400, duration=1.0)
    result = await run_open(target, schedule, workload.stream(schedule), duration=1.0)

    ops = history.operations()
    browses = sum(1 for r in result.records if r.kind == "browse" and r.outcome.ok)
    updates = sum(
        1 for r in result.records if r.kind in ("update_price", "update_product") and r.outcome.ok
    )
    assert browses > 50 and updates > 50
    assert sum(1 for o in ops if o.kind is Kind.READ and o.outcome is Outcome.OK) == browses
    assert sum(1 for o in ops if o.kind is Kind.WRITE and o.outcome is Outcome.OK) == updates
    strong = check(history, Mode.STRONG)
    if lag_s:
        # Reads from a copy 50 ms behind miss writes acknowledged before them; but customers
        # never write and the copy never goes back, so no session promise is broken.
        assert strong.violations.keys() == {AnomalyKind.STALE_READ}
        assert check(history, Mode.SESSION).ok
    else:
        assert strong.ok, str(strong)


async def test_reads_from_a_lagging_copy_are_stale_but_converge() -> None:
    history = History()
    target = http_target(Catalog(lag_s=0.05), MARKET, history)
    await target.run(UpdatePrice(SELLER, PRODUCT, 1234))
    await target.run(Browse(BUYERS[0], PRODUCT))  # the copy has not caught up
    await asyncio.sleep(0.1)
    for buyer in BUYERS[1:4]:
        await target.run(Browse(buyer, PRODUCT))

    strong = check(history, Mode.STRONG)
    assert strong.violations == {AnomalyKind.STALE_READ: 1}
    [example] = strong.examples[AnomalyKind.STALE_READ]
    assert (example.client, example.product_id, example.seen, example.expected) == (
        BUYERS[0],
        PRODUCT,
        1,
        2,
    )
    # Another client's write: no session promise broken; and every reader ends on version 2.
    assert check(history, Mode.SESSION).ok
    eventual = check(history, Mode.EVENTUAL, lag_s=0.05, bound_s=1.0)
    assert eventual.ok, str(eventual)
    assert eventual.convergence[0].version == 2


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(403, Outcome.FAILED), (412, Outcome.FAILED), (429, Outcome.FAILED), (503, Outcome.UNKNOWN)],
)
async def test_refused_writes_are_failed_and_5xx_ones_unknown(
    status: int, outcome: Outcome
) -> None:
    history = History()
    catalog = Catalog()
    catalog.write_status = status
    target = http_target(catalog, MARKET, history)
    assert not (await target.run(UpdateProduct(SELLER, PRODUCT, "new"))).ok
    [op] = history.operations()
    assert (op.kind, op.outcome, op.version) == (Kind.WRITE, outcome, None)


async def test_without_a_history_nothing_is_recorded() -> None:
    target = http_target(Catalog(), MARKET, History())
    target.history = None
    assert (await target.run(Browse(BUYERS[0], PRODUCT))).ok


class FakeClient:
    """The ``MarketplaceClient`` calls the recorded operations make; each notes the catalog
    session it was given."""

    def __init__(self) -> None:
        self.version = 1
        self.error: Exception | None = None
        self.sessions: list[CatalogSession | None] = []

    async def get_product(self, product_id: str, *, session: CatalogSession | None = None) -> Any:
        self.sessions.append(session)
        return _Product(self.version)

    async def search(
        self, query: str, *, category: str | None = None, session: CatalogSession | None = None
    ) -> Any:
        self.sessions.append(session)
        return [], None

    async def update_product(
        self, principal: Any, product_id: str, patch: Any, *, session: CatalogSession | None = None
    ) -> Any:
        self.sessions.append(session)
        if self.error is not None:
            raise self.error
        self.version += 1
        return _Product(self.version)


class _Product:
    def __init__(self, version: int) -> None:
        self.version = version


def client_target(client: FakeClient, history: History) -> ClientTarget:
    seller = MARKET.sellers[0]
    manifest = SeedManifest(
        seed=MARKET.seed,
        zipf=MARKET.zipf,
        seeded_at=datetime.now(UTC),
        password=MARKET.password,
        sellers=[ManifestUser(id="usr_s", email=seller.email, name="s", role=Role.SELLER)],
        buyers=[],
        products=[],
        categories=[],
    )
    return ClientTarget(client, manifest, history=history)  # type: ignore[arg-type]


async def test_the_client_target_records_reads_writes_refusals_and_lost_calls() -> None:
    history = History()
    client = FakeClient()
    target = client_target(client, history)
    await target.run(UpdatePrice(SELLER, PRODUCT, 999))
    await target.run(Browse(BUYERS[0], PRODUCT))
    client.error = NotFound("gone")
    assert (await target.run(UpdatePrice(SELLER, PRODUCT, 1000))).reason == "not_found"
    client.error = ConnectionError("the answer was lost")
    with pytest.raises(ConnectionError):
        await target.run(UpdateProduct(SELLER, PRODUCT, "text"))

    recorded = [(o.client, o.kind, o.outcome, o.version) for o in history.operations()]
    assert recorded == [
        (SELLER, Kind.WRITE, Outcome.OK, 2),
        (BUYERS[0], Kind.READ, Outcome.OK, 2),
        (SELLER, Kind.WRITE, Outcome.FAILED, None),
        (SELLER, Kind.WRITE, Outcome.UNKNOWN, None),
    ]
    assert check(history, Mode.STRONG).ok


def test_a_verdict_summary_is_json_with_counts_and_examples_in_words() -> None:
    history = History()
    stale = history.invoke("b1", Kind.READ, "p")
    write = history.invoke("s1", Kind.WRITE, "p")
    history.complete(write, 2)
    later = history.invoke("b2", Kind.READ, "p")
    history.complete(later, 1)
    history.complete(stale, 1)
    summary = verdict_summary(check(history, Mode.STRONG))
    assert orjson.loads(orjson.dumps(summary)) == summary
    assert summary["mode"] == "strong" and summary["ok"] is False
    assert summary["violations"] == {"stale_read": 1}
    assert (summary["operations"], summary["reads"], summary["writes"]) == (3, 2, 1)
    [example] = summary["examples"]["stale_read"]
    assert example.startswith("b2 on p") and "expected 2" in example


async def test_the_client_target_keeps_one_catalog_session_per_user() -> None:
    """In process, each simulated user reads, searches and writes with its own session, kept
    for the run, as a gateway client sending back X-Catalog-Session would."""
    client = FakeClient()
    target = client_target(client, History())
    await target.run(UpdatePrice(SELLER, PRODUCT, 1234))
    await target.run(Browse(SELLER, PRODUCT))
    await target.run(Browse(BUYERS[0], PRODUCT))
    await target.run(Search(BUYERS[0], "lamp"))
    await target.run(Browse(BUYERS[1], PRODUCT))
    seller, seller_again, buyer, buyer_search, other = client.sessions
    assert all(isinstance(s, CatalogSession) for s in client.sessions)
    assert seller is seller_again and buyer is buyer_search
    assert len({id(seller), id(buyer), id(other)}) == 3


async def test_the_http_target_sends_back_each_users_catalog_session() -> None:
    """Over HTTP, a user sends back the last X-Catalog-Session the gateway gave it, and only
    its own."""
    sent: list[tuple[str, str | None]] = []

    async def gateway(request: httpx.Request) -> httpx.Response:
        who = request.headers["authorization"].removeprefix("Bearer tok-")
        sent.append((who, request.headers.get(HEADER)))
        body = orjson.dumps({"id": PRODUCT, "version": 1})
        return httpx.Response(200, content=body, headers={HEADER: f"s1.0-{len(sent)}"})

    http_market = HttpMarket(
        base_url="http://sim.test",
        password=MARKET.password,
        tokens={email: f"tok-{email}" for email in (SELLER, *BUYERS)},
        product_ids={p.product_id: p.product_id for p in MARKET.products},
    )
    http = httpx.AsyncClient(base_url=http_market.base_url, transport=httpx.MockTransport(gateway))
    target = HttpTarget(http_market, http=http)
    for op in (
        UpdatePrice(SELLER, PRODUCT, 1234),
        Browse(BUYERS[0], PRODUCT),
        Browse(SELLER, PRODUCT),
        Browse(BUYERS[0], PRODUCT),
    ):
        assert (await target.run(op)).ok
    assert sent == [(SELLER, None), (BUYERS[0], None), (SELLER, "s1.0-1"), (BUYERS[0], "s1.0-2")]
