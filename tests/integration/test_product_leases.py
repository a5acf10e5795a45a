"""Product reads under leases (actors/leases.py): cached, yet never older than an answered write.

Two clients on one marketplace stand for two gateway replicas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actors.client import MarketplaceClient
from actors.directory import CATALOG
from actors.protocols import CatalogShardApi
from actors.runtime import Runtime
from marketplace.domain.catalog import ProductPatch
from tests.conftest import start_marketplace, stop_marketplace
from tests.integration.market import build_market, principal

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def leased(
    ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Runtime]:
    """One marketplace with one-second leases (and one coordinator) for the tests that build
    markets of their own on it."""
    runtime, pg_url = await start_marketplace(
        tmp_path_factory.mktemp("leases"), product_lease_s=1.0, order_coordinators=1
    )
    yield runtime
    await stop_marketplace(runtime, pg_url)


def second_client(runtime: Runtime) -> MarketplaceClient:
    client = runtime.client
    assert client is not None
    return MarketplaceClient(client.directory, client.engine)


async def test_a_write_is_seen_by_every_client_once_it_has_answered(leased: Runtime) -> None:
    reader, writer = leased.client, second_client(leased)
    assert reader is not None
    market = await build_market(reader, stock=[5], buyers=1)
    product = market.products[0]
    seller = principal(market.seller)
    for round_no in range(1, 4):
        before = await reader.get_product(product.id)  # the reader now holds a fresh copy
        assert await reader.get_product(product.id) is before  # served from that copy
        price = 2000 + round_no
        await writer.update_product(seller, product.id, ProductPatch(price_cents=price))
        after = await reader.get_product(product.id)
        assert after.price_cents == price, f"round {round_no}: a stale copy was served"
        assert after.version == before.version + 1
    await writer.deactivate_product(seller, product.id)
    assert (await reader.get_product(product.id)).active is False


async def test_a_write_answers_once_the_holders_have_dropped_their_copies(
    leased: Runtime,
) -> None:
    # Not a lease later: the shard tells the reader to drop its copy and answers on its word.
    reader, writer = leased.client, second_client(leased)
    assert reader is not None
    market = await build_market(reader, stock=[5], buyers=1)
    product = market.products[0]
    shard = reader.directory.route(CATALOG, product.id)
    await reader.get_product(product.id)  # held, and the reader now polls the shard
    before = await shard.call(CatalogShardApi.lease_outcomes)
    await writer.update_product(principal(market.seller), product.id, ProductPatch(price_cents=77))
    after = await shard.call(CatalogShardApi.lease_outcomes)
    assert after["acked"] == before["acked"] + 1, (before, after)
    assert after["waited"] == before["waited"], (before, after)
    assert (await reader.get_product(product.id)).price_cents == 77


async def test_a_zero_lease_asks_the_shard_every_time(make_marketplace: Any) -> None:
    runtime = await make_marketplace(product_lease_s=0)
    client = runtime.client
    market = await build_market(client, stock=[5], buyers=1)
    first = await client.get_product(market.products[0].id)
    second = await client.get_product(market.products[0].id)
    assert first == second and first is not second


async def test_a_checkout_is_priced_as_of_the_last_answered_reprice(leased: Runtime) -> None:
    # One coordinator, so the second checkout is priced by the process that holds a copy from
    # the first; the lease must not let that copy outlive the reprice.
    client = leased.client
    assert client is not None
    market = await build_market(client, stock=[10], buyers=1)
    product = market.products[0]
    seller = principal(market.seller)
    buyer = market.buyers[0].id
    items = [{"product_id": product.id, "quantity": 1}]
    first = await client.place_order(buyer, "priced-1", items=items)
    assert first.items[0].unit_price_cents == product.price_cents
    repriced = await client.update_product(seller, product.id, ProductPatch(price_cents=4321))
    second = await client.place_order(buyer, "priced-2", items=items)
    assert second.items[0].unit_price_cents == 4321, "priced from a copy older than the reprice"
    assert second.items[0].product_version == repriced.version
    assert second.total_cents == 4321
    await client.deactivate_product(seller, product.id)
    third = await client.place_order(buyer, "priced-3", items=items)
    assert third.failure_reason == "product_unavailable"


async def test_the_write_benchmark_takes_the_path_each_case_names(leased: Runtime) -> None:
    from marketplace.bench.product_writes import measure

    assert leased.client is not None
    timings, outcomes = await measure(leased.client, writes=2, rounds=1)
    assert {case: len(values) for case, values in timings.items()} == {
        "no copy out": 2,
        "held, dropped": 2,
        "held, waited out": 2,
    }
    assert outcomes == {
        "no copy out": {"free": 2, "acked": 0, "waited": 0},
        "held, dropped": {"free": 0, "acked": 2, "waited": 0},
        "held, waited out": {"free": 0, "acked": 0, "waited": 2},
    }
