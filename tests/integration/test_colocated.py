"""The colocated topology on real Ray: one process per partition index, same invariants.

A colocated marketplace (``topology="colocated"``) runs one Ray actor, ``cell-<i>``, per
partition index; its roles call each other directly and other cells over Ray. These tests run
the checkout race and its invariants of ``test_checkout_invariants`` against it, kill a cell in
the middle of the race, and run a checkout that crosses two cells.
"""

from __future__ import annotations

from typing import Any

import pytest
import ray

from actors.directory import INVENTORY, ORDERS
from marketplace.domain.ids import order_id_for, owner_index
from marketplace.domain.orders import OrderStatus
from tests.integration import test_checkout_invariants as invariants
from tests.integration.market import build_market

pytestmark = pytest.mark.integration


def _named_actors(namespace: str) -> set[str]:
    return {
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == namespace
    }


async def _pids(runtime: Any) -> set[int]:
    return {info["pid"] for info in await runtime.client.ready()}


async def _racing_market(
    make_marketplace: Any, monkeypatch: pytest.MonkeyPatch, cells: int = 1, **counts: int
) -> tuple[Any, Any]:
    """A colocated marketplace of ``cells`` cells and the race's market in it; the race
    looks its victims up by actor name, and here the processes are the cells."""
    monkeypatch.setattr(invariants, "VICTIMS", tuple(f"cell-{i}" for i in range(cells)))
    runtime = await make_marketplace("sqlite", topology="colocated", **counts)
    return runtime, await build_market(runtime.client, stock=invariants.UNITS, buyers=20)


async def test_one_cell_runs_every_role_in_one_process(make_marketplace: Any) -> None:
    runtime = await make_marketplace("sqlite", topology="colocated")
    directory = runtime.client.directory
    assert directory.hosts() == ["cell-0"]
    assert _named_actors(runtime.settings.namespace) == {"cell-0"}
    identities = await runtime.client.ready()
    # Every role answers, as itself, from the one process.
    assert sorted(f"{info['kind']}-{info['index']}" for info in identities) == sorted(
        [
            "CatalogShard-0",
            "InventoryPartition-0",
            "CartShard-0",
            "PaymentProcessor-0",
            "ShipmentCoordinator-0",
            "SellerView-0",
            "OrderCoordinator-0",
        ]
    )
    cell = await directory.get("orders-0").ready.remote()
    assert {info["pid"] for info in identities} == {cell["pid"]}
    assert sorted(cell["roles"]) == sorted(directory.all_names())
    assert cell["writers"] == 1  # the roles' rows commit together
    assert (await directory.get("inventory-0").ready.remote())["pid"] == cell["pid"]


async def test_checkouts_in_one_cell_keep_the_invariants(
    make_marketplace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, market = await _racing_market(make_marketplace, monkeypatch)
    placed, _ = await invariants._race(runtime, market)
    await invariants._assert_invariants(runtime, market, placed)


async def test_a_killed_cell_comes_back_and_finishes_its_orders(
    make_marketplace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, market = await _racing_market(make_marketplace, monkeypatch)
    placed, (pid_before,) = await invariants._race(runtime, market, kill_midway=True)
    # The kill took: the cell, and every role in it, answers from a new process.
    cell = ray.get_actor("cell-0", namespace=runtime.settings.namespace)
    assert (await cell.ready.remote())["pid"] != pid_before
    assert await _pids(runtime) == {(await cell.ready.remote())["pid"]}
    # The coordinator came back from the store and finished what it had.
    stats = await runtime.client.order_stats()
    assert stats.get("status_pending", 0) == 0
    await invariants._assert_invariants(runtime, market, placed)


async def test_checkouts_cross_two_cells(
    make_marketplace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, market = await _racing_market(
        make_marketplace,
        monkeypatch,
        cells=2,
        order_coordinators=2,
        inventory_partitions=2,
        catalog_shards=2,
    )
    directory = runtime.client.directory
    assert directory.hosts() == ["cell-0", "cell-1"]
    assert _named_actors(runtime.settings.namespace) == {"cell-0", "cell-1"}
    assert len(await _pids(runtime)) == 2
    placed, _ = await invariants._race(runtime, market)
    await invariants._assert_invariants(runtime, market, placed)

    # Orders coordinated in one cell reserved in the other (a rejected reserve crossed too:
    # in the race the orders whose stock is in their coordinator's own cell, with no Ray hop,
    # tend to take the stock first, so a crossing one may not be among the confirmed).
    coordinators = directory.count(ORDERS)
    partitions = directory.count(INVENTORY)
    crossing = [
        order
        for order in placed
        if any(
            owner_index(item.product_id, partitions) != owner_index(order.id, coordinators)
            for item in order.items
        )
    ]
    assert crossing, "no checkout crossed cells"
    # And one more, on purpose: a product of partition 1 bought through coordinator 0.
    product = next(p for p in market.products if owner_index(p.id, partitions) == 1)
    buyer = market.buyers[0]
    key = next(
        k
        for k in (f"cross-{i}" for i in range(1000))
        if owner_index(order_id_for(buyer.id, k), coordinators) == 0
    )
    await runtime.client.adjust_stock(
        invariants._seller(market), product.id, 1, request_id=f"top-up-{key}"
    )
    order = await runtime.client.place_order(
        buyer.id, key, items=[{"product_id": product.id, "quantity": 1}]
    )
    assert order.status is OrderStatus.CONFIRMED, order
    report = await runtime.client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()
