"""Bounded order memory through real Ray actors, on SQLite and PostgreSQL: with
``order_cache_size=2`` each coordinator holds its open orders and at most two others, yet every
order is read, cancelled, shipped and replayed, the status counts stay right, and killed
coordinators come back holding only open orders while still answering the old ones (a
coordinator that owns no more orders than its cache holds loads them all, as it would at any
start)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import ray

from marketplace.domain.ids import owner_index, sibling_id
from marketplace.domain.orders import OrderStatus
from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Principal, Role
from tests.integration.market import build_market

pytestmark = pytest.mark.integration

COORDINATORS, CACHE = 2, 2
CARRIER = Principal(id="usr_carrier", role=Role.CARRIER)


def _statuses(stats: dict[str, int]) -> dict[str, int]:
    return {k.removeprefix("status_"): v for k, v in stats.items() if k.startswith("status_") and v}


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_coordinators_hold_open_orders_and_a_bounded_cache(
    make_marketplace: Any, database: str
) -> None:
    runtime = await make_marketplace(
        database, order_coordinators=COORDINATORS, order_cache_size=CACHE
    )
    client = runtime.client
    market = await build_market(client, stock=[50], buyers=1)
    buyer = market.buyers[0]
    me = Principal(id=buyer.id, role=Role.BUYER)
    line = [{"product_id": market.products[0].id, "quantity": 1}]

    placed = [await client.place_order(buyer.id, f"k{n}", items=line) for n in range(10)]
    assert all(order.status is OrderStatus.CONFIRMED for order in placed)
    stats = await client.order_stats()
    assert _statuses(stats) == {"confirmed": 10}
    assert stats["orders_held"] <= COORDINATORS * CACHE  # nothing open: the caches alone

    # every order answers, though most were let go of
    for order in placed:
        assert await client.get_order(me, order.id) == order
    assert await client.place_order(buyer.id, "k0", items=line) == placed[0]  # a replay
    # cancel and ship orders let go of since (each cache has taken newer orders meanwhile)
    for order in placed[-4:]:
        await client.get_order(me, order.id)
    cancelled = await client.cancel_order(me, placed[0].id)
    assert cancelled.status is OrderStatus.CANCELLED
    shipment = await client.move_shipment(
        CARRIER, sibling_id(placed[1].id, "shp"), ShipmentStatus.SHIPPED
    )
    assert shipment.status is ShipmentStatus.SHIPPED
    assert (await client.get_order(me, placed[1].id)).status is OrderStatus.SHIPPED
    stats = await client.order_stats()
    assert _statuses(stats) == {"confirmed": 8, "shipped": 1, "cancelled": 1}
    assert stats["orders_held"] <= COORDINATORS * CACHE
    assert (await client.get_stock(market.products[0].id)).available == 50 - 9

    await client.flush()
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.summary()

    # killed and restarted: nothing open to load, yet every order and count is there
    namespace = runtime.settings.namespace
    coordinators = [
        ray.get_actor(f"orders-{index}", namespace=namespace) for index in range(COORDINATORS)
    ]
    pids = [(await actor.ready.remote())["pid"] for actor in coordinators]
    for actor in coordinators:
        ray.kill(actor, no_restart=False)
    # a kill takes effect a little later: wait until each answers from a new process
    for actor, pid in zip(coordinators, pids, strict=True):
        while True:
            if (await actor.ready.remote())["pid"] != pid:
                break
            await asyncio.sleep(0.05)
    stats = await client.order_stats()
    # Nothing is open; a coordinator whose orders all fit its cache loads them all (order ids
    # are random, so about one run in ten has a coordinator owning two or fewer of the ten).
    owned = [0] * COORDINATORS
    for order in placed:
        owned[owner_index(order.id, COORDINATORS)] += 1
    assert stats["orders_held"] == sum(n for n in owned if n <= CACHE)
    assert _statuses(stats) == {"confirmed": 8, "shipped": 1, "cancelled": 1}
    assert await client.get_order(me, placed[5].id) == placed[5]
    assert (await client.get_order(me, placed[0].id)).status is OrderStatus.CANCELLED
    assert await client.place_order(buyer.id, "k7", items=line) == placed[7]
    fresh = await client.place_order(buyer.id, "k-new", items=line)
    assert fresh.status is OrderStatus.CONFIRMED
    assert len(await client.list_orders(buyer.id)) == 11
    assert (await client.get_stock(market.products[0].id)).available == 50 - 10
    await client.flush()
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.summary()
