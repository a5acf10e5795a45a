"""The simulator against the real runtime: the client target in-process (SQLite and
PostgreSQL), and ``marketplace simulate`` as a user runs it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from marketplace.sim.client_target import ClientTarget
from marketplace.sim.seed import seed_market
from marketplace.sim.simulation import SimConfig, build_market, simulate
from tests.conftest import SPREAD_OVER_ACTORS, MakeMarketplace
from tests.integration.test_cli import marketplace, output

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_the_client_target_runs_every_operation_and_keeps_the_invariants(
    make_marketplace: MakeMarketplace, database: str
) -> None:
    runtime = await make_marketplace(database=database, **SPREAD_OVER_ACTORS)  # scatter-gather
    client = runtime.client
    # browse has every kind of operation (om has no restock); a rate the machine keeps up with.
    config = SimConfig(preset="browse", rate=60, duration=6, seed=5, products=40, buyers=12)
    market = build_market(config)
    manifest = await seed_market(client, market, write=False)
    target = ClientTarget(client, manifest)
    result = await simulate(target, market, config)

    summary = result.summary
    assert summary.total > 200
    failures = Counter(r.outcome.reason for r in result.records if not r.outcome.ok)
    # A customer's operations run in order, so no checkout finds its cart empty, and with
    # thousands of units per product nothing sells out.
    assert not failures, failures
    assert {"browse", "search", "add_to_cart", "checkout", "abandon_cart"} <= set(summary.kinds)
    checkouts = summary.kinds["checkout"].ok
    stats = await client.order_stats()
    assert stats["confirmed"] == checkouts > 0
    report = await client.audit()
    assert report.ok, report.summary()


async def test_carriers_ship_and_deliver_what_checkouts_confirmed(shared_marketplace: Any) -> None:
    # The module's shared marketplace: the seeding test beside it makes no order, so the
    # order counts below are this run's alone.
    client = shared_marketplace.client
    config = SimConfig(preset="om", rate=80, duration=6, seed=9, products=40, buyers=20)
    market = build_market(config)
    target = ClientTarget(client, await seed_market(client, market, write=False))
    result = await simulate(target, market, config)
    assert not [r for r in result.records if not r.outcome.ok]
    stats = await client.order_stats()
    moved = result.summary.kinds["move_shipment"].ok - sum(
        1 for r in result.records if r.outcome.reason == "idle"
    )
    # Every move that was not idle shipped or delivered one of this run's orders.
    assert moved > 0
    assert stats.get("status_shipped", 0) + 2 * stats.get("status_delivered", 0) == moved
    assert target.deliveries.delivered == stats.get("status_delivered", 0) > 0
    assert (await client.audit()).ok


def test_marketplace_simulate_under_a_fault_plan_writes_its_results_and_an_ok_audit(
    tmp_path: Path, ray_address: str
) -> None:
    # A fault plan that costs time, not operations: a killed actor's calls wait for its
    # restart, a slow card network only slows checkouts.
    (tmp_path / "plan.toml").write_text(
        'name = "two"\n'
        '[[fault]]\nkind = "kill_actor"\nactor = "inventory"\nat = 1.5\n'
        '[[fault]]\nkind = "payments"\nat = 3.0\nduration = 1.5\nlatency_ms = 50\n'
    )
    ran = marketplace(
        tmp_path,
        "simulate",
        "--preset", "om",
        "--duration", "6",
        "--rate", "40",
        "--products", "60",
        "--buyers", "30",
        "--faults", "plan.toml",
        "--out", "res",
        MARKETPLACE_RAY_ADDRESS=ray_address,
    )  # fmt: skip
    assert ran.returncode == 0, output(ran)
    assert "All invariants hold." in ran.stdout, output(ran)
    assert "Faults (plan two, seed 7)" in ran.stdout, output(ran)
    assert "Every order ended" in ran.stdout, output(ran)
    folder = tmp_path / "res"
    for name in (
        "ops.csv", "kinds.csv", "timeline.csv", "faults.csv", "throughput.png", "latency.png"
    ):  # fmt: skip
        assert (folder / name).stat().st_size > 0, name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["audit"]["ok"] is True
    assert summary["config"]["preset"] == "om" and summary["config"]["via"] == "client"
    assert summary["total"] == summary["ok"] + summary["failed"] + summary["dropped"] > 100
    assert summary["kinds"]["checkout"]["ok"] > 0
    assert summary["saga_counters"]["confirmed"] == summary["kinds"]["checkout"]["ok"]
    assert [f["kind"] for f in summary["faults"]] == ["kill_actor", "payments"]
    assert all(f["healed_s"] is not None for f in summary["faults"]), summary["faults"]
    assert summary["fault_plan"] == {"name": "two", "seed": 7}
    assert summary["orders_terminal_after_s"] is not None
    assert summary["orders_acknowledged_confirmed"] > 0
    assert summary["orders_acknowledged_lost"] == []


def test_marketplace_simulate_refuses_bad_arguments(tmp_path: Path) -> None:
    unknown = marketplace(tmp_path, "simulate", "--preset", "nope")
    assert unknown.returncode == 2, output(unknown)
    assert "unknown preset 'nope'" in unknown.stderr
    no_host = marketplace(tmp_path, "simulate", "--via", "http")
    assert no_host.returncode == 2 and "--host" in no_host.stderr, output(no_host)
    assert not (tmp_path / "results").exists()


async def test_seeding_a_market_twice_reuses_its_users_and_products(
    shared_marketplace: Any,
) -> None:
    # The second seeding used to fail every registration first and then, beside the actors'
    # writers, time out on SQLite's write lock ("database is locked" after 60 s).
    client = shared_marketplace.client
    market = build_market(SimConfig(seed=21, sellers=10, products=100, buyers=200))
    first = await seed_market(client, market, write=False)
    second = await seed_market(client, market, write=False)
    assert [u.id for u in second.buyers] == [u.id for u in first.buyers]
    assert [p.id for p in second.products] == [p.id for p in first.products]
    stock = await client.get_stock(first.products[0].id)
    assert stock.available == market.products[0].stock  # listed once, stocked once
