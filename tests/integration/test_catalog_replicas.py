"""Catalog read replicas under real Ray: what each consistency mode lets a product read and a
search answer while the replicas lag (``replication_delay_ms``), and a replica's restart.

One marketplace with one replica per shard and a 300 ms replication delay; the consistency mode
is the reading process's choice (``actors.catalog_reads``), so one client per mode shares it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import ray

from actors import scrape
from actors.client import MarketplaceClient
from actors.directory import CATALOG, REPLICAS, Directory
from actors.protocols import CatalogReplicaApi
from actors.runtime import Runtime
from cluster.observability import metric_names
from marketplace.config import Consistency
from marketplace.consistency import History, Kind, Mode, Outcome, check
from marketplace.domain.catalog import Product, ProductPatch
from marketplace.domain.errors import NotFound
from marketplace.domain.ids import owner_index
from marketplace.domain.session_token import CatalogSession
from marketplace.sim.faults.injectors import FaultContext, check_targets, injector_for
from marketplace.sim.faults.plan import parse_plan, schedule
from tests.conftest import start_marketplace, stop_marketplace
from tests.integration.market import build_market, principal

pytestmark = pytest.mark.integration

DELAY_S = 0.3
# How long a held copy of an eventual read lives (the clients' product_lease_s).
HELD_S = 0.1
# Beyond the delay and a held copy: a poll's round trip and a loaded machine's scheduling.
SLACK_S = 2.0
CONVERGED_WITHIN_S = DELAY_S + HELD_S + SLACK_S


@pytest_asyncio.fixture(scope="module")
async def replicated(
    ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Runtime]:
    runtime, pg_url = await start_marketplace(
        tmp_path_factory.mktemp("replicas"),
        catalog_shards=2,
        catalog_replicas=1,
        replication_delay_ms=DELAY_S * 1000,
        product_lease_s=HELD_S,
        order_coordinators=1,
    )
    yield runtime
    await stop_marketplace(runtime, pg_url)


def reader(runtime: Runtime, mode: Consistency) -> MarketplaceClient:
    """A client of ``runtime`` that reads in ``mode``."""
    assert runtime.client is not None
    settings = runtime.settings.model_copy(update={"catalog_consistency": mode})
    return MarketplaceClient(Directory(settings), runtime.client.engine)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float) -> float:
    """Seconds until ``check`` holds (fails the test after ``within_s``)."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def on_replica(client: MarketplaceClient, product_id: str) -> Product:
    """The product once the replicas have it (a listing reaches them a delay later)."""
    found: list[Product] = []

    async def listed() -> bool:
        try:
            found.append(await client.get_product(product_id, session=CatalogSession()))
        except NotFound:
            return False
        return True

    await eventually(listed, CONVERGED_WITHIN_S)
    return found[-1]


async def test_an_eventual_read_may_be_old_and_converges_within_the_delay(
    replicated: Runtime,
) -> None:
    writer = replicated.client
    assert writer is not None
    client = reader(replicated, Consistency.EVENTUAL)
    market = await build_market(writer, stock=[5], buyers=1)
    product = await on_replica(client, market.products[0].id)
    await asyncio.sleep(HELD_S * 1.5)  # the copy held here runs out: the next read asks
    stats_before = await _replica_stats(client, product.id)
    patched_at = time.monotonic()
    await writer.update_product(
        principal(market.seller), product.id, ProductPatch(price_cents=4242)
    )
    seen = await client.get_product(product.id, session=CatalogSession())
    if time.monotonic() - patched_at < DELAY_S * 0.8:  # else the machine was too slow to tell
        assert seen.version == product.version, "the replica applied the write before its delay"
        stats_after = await _replica_stats(client, product.id)
        assert stats_after["stale_served"] > stats_before["stale_served"]

    async def converged() -> bool:
        read = await client.get_product(product.id, session=CatalogSession())
        return read.price_cents == 4242

    took = await eventually(converged, CONVERGED_WITHIN_S)
    assert time.monotonic() - patched_at >= DELAY_S * 0.9 or took == 0

    # Search follows the same replicas.
    async def found_by_search() -> bool:
        items, _ = await client.search(
            "Widget", seller_id=product.seller_id, session=CatalogSession()
        )
        return [p.price_cents for p in items] == [4242]

    await eventually(found_by_search, CONVERGED_WITHIN_S)
    await client.close()


async def test_a_session_reads_its_own_writes_despite_the_delay(replicated: Runtime) -> None:
    writer = replicated.client
    assert writer is not None
    client = reader(replicated, Consistency.SESSION)
    market = await build_market(writer, stock=[5], buyers=1)
    product = await on_replica(client, market.products[0].id)
    seller = principal(market.seller)
    session = CatalogSession()
    for price in (3001, 3002, 3003):
        await client.update_product(
            seller, product.id, ProductPatch(price_cents=price), session=session
        )
        # What the client sends back: the header value, read as a new request would.
        header = session.header()
        assert header is not None
        again = CatalogSession.from_header(header, shards=2)
        read = await client.get_product(product.id, session=again)
        assert read.price_cents == price, "a session read missed its own write"
        items, _ = await client.search("Widget", seller_id=product.seller_id, session=again)
        assert [p.price_cents for p in items] == [price]
        # Monotonic reads: a later read with the raised token never goes back.
        later = await client.get_product(product.id, session=CatalogSession(again.token))
        assert later.version >= read.version
        session = again
    await client.close()


async def test_strong_reads_never_see_an_older_version_with_replicas(replicated: Runtime) -> None:
    writer = replicated.client
    assert writer is not None
    client = reader(replicated, Consistency.STRONG)
    market = await build_market(writer, stock=[5], buyers=1)
    product = market.products[0]
    seller = principal(market.seller)
    for price in (5001, 5002, 5003):
        await writer.update_product(seller, product.id, ProductPatch(price_cents=price))
        read = await client.get_product(product.id, session=CatalogSession())
        assert read.price_cents == price
        items, _ = await client.search(
            "Widget", seller_id=product.seller_id, session=CatalogSession()
        )
        assert [p.price_cents for p in items] == [price]
    await client.close()


async def test_a_killed_replica_restarts_empty_and_catches_up(replicated: Runtime) -> None:
    writer = replicated.client
    assert writer is not None
    client = reader(replicated, Consistency.EVENTUAL)
    market = await build_market(writer, stock=[5], buyers=1)
    product = await on_replica(client, market.products[0].id)
    directory = client.directory
    replica = directory.replicas_of(_shard(client, product.id))[0]
    ray.kill(directory.get(f"{REPLICAS.name}-{replica}"), no_restart=False)
    await writer.update_product(
        principal(market.seller), product.id, ProductPatch(price_cents=6006)
    )

    async def caught_up() -> bool:
        try:
            read = await client.get_product(product.id, session=CatalogSession())
        except Exception:  # the replica's process is still starting
            return False
        return read.price_cents == 6006

    await eventually(caught_up, 60)
    await client.close()


async def test_a_fault_plan_stalls_replication_then_kills_a_replica(replicated: Runtime) -> None:
    # The fault plans' `replicas` target (marketplace.sim.faults): the replicas' calls to
    # their shards lost, then a replica killed, each applied and healed as a plan runs them.
    writer = replicated.client
    assert writer is not None
    client = reader(replicated, Consistency.EVENTUAL)
    market = await build_market(writer, stock=[5], buyers=1)
    product = await on_replica(client, market.products[0].id)
    seller = principal(market.seller)
    replica = client.directory.replicas_of(_shard(client, product.id))[0]
    drawn = schedule(
        parse_plan(
            {
                "name": "replicas",
                "fault": [
                    {
                        "kind": "calls",
                        "from": "replicas",
                        "to": "catalog",
                        "at": 0.0,
                        "duration": 1.0,
                        "drop_rate": 1.0,
                    },
                    {"kind": "kill_actor", "actor": "replicas", "index": replica, "at": 1.0},
                ],
            }
        ),
        10.0,
        {REPLICAS.name: client.directory.count(REPLICAS)},
    )
    context = FaultContext(settings=replicated.settings, directory=writer.directory)
    check_targets(drawn, context)
    stall, kill = (injector_for(fault, context) for fault in drawn.faults)

    async def price_is(cents: int) -> bool:
        try:
            read = await client.get_product(product.id, session=CatalogSession())
        except Exception:  # the killed replica's process is still starting
            return False
        return read.price_cents == cents

    await stall.apply()
    try:
        # The poll each replica had sent before the fault may still bring one change: spend it.
        await writer.update_product(seller, product.id, ProductPatch(price_cents=1001))
        with contextlib.suppress(AssertionError):
            await eventually(lambda: price_is(1001), CONVERGED_WITHIN_S)
        await writer.update_product(seller, product.id, ProductPatch(price_cents=2002))
        await asyncio.sleep(CONVERGED_WITHIN_S)
        assert not await price_is(2002), "a change reached the replica while its polls were lost"
    finally:
        await stall.lift()
    await eventually(lambda: price_is(2002), 30)
    assert await stall.healthy()

    await kill.apply()
    await eventually(kill.healthy, 60)  # a new process answers, caught up from a snapshot
    await writer.update_product(seller, product.id, ProductPatch(price_cents=3003))
    await eventually(lambda: price_is(3003), 30)
    await client.close()


async def test_no_replica_is_made_by_default(make_marketplace: Any) -> None:
    runtime = await make_marketplace()
    directory = runtime.client.directory
    assert directory.replica_names() == []
    with pytest.raises(ValueError):
        ray.get_actor(f"{REPLICAS.name}-0", namespace=runtime.settings.namespace)
    # A read with a session is today's strong read.
    market = await build_market(runtime.client, stock=[1], buyers=1)
    session = CatalogSession()
    read = await runtime.client.get_product(market.products[0].id, session=session)
    assert read == market.products[0] and session.header() is None


def _shard(client: MarketplaceClient, product_id: str) -> int:
    return owner_index(product_id, client.directory.count(CATALOG))


async def _replica_stats(client: MarketplaceClient, product_id: str) -> dict[str, float]:
    directory = client.directory
    replica = directory.replicas_of(_shard(client, product_id))[0]
    return await directory.at(REPLICAS, replica).call(CatalogReplicaApi.stats)


async def test_replicas_stay_actors_of_their_own_in_the_colocated_topology(
    make_marketplace: Any,
) -> None:
    runtime = await make_marketplace(
        topology="colocated", catalog_replicas=1, catalog_consistency="eventual"
    )
    client = runtime.client
    directory = client.directory
    assert directory.hosts() == ["cell-0"]
    assert directory.host("replicas-0") == "replicas-0"
    identity = await directory.at(REPLICAS, 0).call(CatalogReplicaApi.ready)
    assert identity["kind"] == "CatalogReplica"
    market = await build_market(client, stock=[1], buyers=1)
    product = await on_replica(client, market.products[0].id)
    await client.update_product(principal(market.seller), product.id, ProductPatch(price_cents=7))

    async def followed() -> bool:
        read = await client.get_product(product.id, session=CatalogSession())
        return read.price_cents == 7

    await eventually(followed, CONVERGED_WITHIN_S)


# Readers, writers and a replica killed mid-run, recorded and checked (marketplace.consistency).
RUN_S = 3.0
READERS = 3


@pytest.mark.parametrize("mode", list(Consistency))
async def test_a_recorded_history_under_readers_writers_and_a_replica_kill_meets_its_mode(
    replicated: Runtime, mode: Consistency
) -> None:
    writer = replicated.client
    assert writer is not None
    market = await build_market(writer, stock=[5, 5, 5, 5], buyers=1)
    readers = [reader(replicated, mode) for _ in range(READERS)]
    for product in market.products:  # every replica has every product before the clock starts
        await on_replica(readers[0], product.id)
    history = History()
    for product in market.products:
        history.set_initial(product.id, product.version)
    seller = principal(market.seller)
    rng = random.Random(mode.value)
    ends_at = time.monotonic() + RUN_S

    async def read(n: int, session: CatalogSession, product: Product) -> None:
        # A read the restarting replica did not answer is recorded (unknown) and let go.
        with (
            contextlib.suppress(Exception),
            history.recording(f"reader-{n}", Kind.READ, product.id) as call,
        ):
            call.version = (await readers[n].get_product(product.id, session=session)).version

    async def write(client: str, via: MarketplaceClient, session: CatalogSession) -> None:
        product = rng.choice(market.products)
        patch = ProductPatch(price_cents=rng.randint(100, 9999))
        with history.recording(client, Kind.WRITE, product.id) as call:
            call.version = (
                await via.update_product(seller, product.id, patch, session=session)
            ).version

    async def reading(n: int) -> None:
        # In session mode a reader also writes now and then, in its session: read-your-writes
        # is about a client's own writes.
        session = CatalogSession()
        while time.monotonic() < ends_at:
            if mode is Consistency.SESSION and rng.random() < 0.1:
                await write(f"reader-{n}", readers[n], session)
            await read(n, session, rng.choice(market.products))
            await asyncio.sleep(0.005)

    async def writing() -> None:
        while time.monotonic() < ends_at:
            await write("writer", writer, CatalogSession())
            await asyncio.sleep(0.05)

    async def kill_a_replica() -> None:
        await asyncio.sleep(RUN_S / 3)
        ray.kill(readers[0].directory.get(f"{REPLICAS.name}-0"), no_restart=False)

    await asyncio.gather(*(reading(n) for n in range(READERS)), writing(), kill_a_replica())
    # Writes have stopped: once the lag and a held copy have passed, every reader reads every
    # product once more (the final reads eventual convergence is judged by).
    await asyncio.sleep(CONVERGED_WITHIN_S)
    for n in range(READERS):
        for product in market.products:
            await read(n, CatalogSession(), product)

    ops = history.operations()
    assert sum(1 for o in ops if o.kind is Kind.WRITE and o.outcome is Outcome.OK) > 20
    assert sum(1 for o in ops if o.kind is Kind.READ and o.outcome is Outcome.OK) > 100
    verdict = check(history, Mode(mode.value), lag_s=DELAY_S + HELD_S, bound_s=SLACK_S)
    assert verdict.ok, str(verdict)
    if mode is Consistency.EVENTUAL:
        # What the weaker mode costs, seen by the same checker: reads older than answered writes.
        assert check(history, Mode.STRONG).count("stale_read") > 0
    for client in readers:
        await client.close()


async def test_the_replica_families_reach_the_nodes_metrics_export(replicated: Runtime) -> None:
    # The other tests of this module made session and eventual reads and replicated writes;
    # what they recorded is summed from the nodes' exports as GET /metrics sums it.
    wanted = {metric.name.removesuffix("_total") for metric in metric_names.REPLICA_METRICS}
    namespace = replicated.settings.namespace

    async def exported() -> bool:
        texts, _ = await scrape.fetch(scrape.node_exports())
        return wanted <= {metric.name for metric in scrape.summed(texts, namespace)}

    await eventually(exported, 30)
