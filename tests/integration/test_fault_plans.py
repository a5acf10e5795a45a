"""Fault plans against the real runtime: each kind of fault while the simulator's load runs
(SQLite; PostgreSQL with RabbitMQ), then every order ends within 30 s, the audit is clean and no
event is lost; the injected call and card faults do what they say on a single checkout; a bad
plan is refused before anything starts. (``marketplace simulate --faults`` as a user runs it is
in test_simulate.py.)

PostgreSQL and RabbitMQ run on this machine (as in CI); these tests stop and start them, and
the fault runner starts them again whatever happens.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import pytest

from actors.directory import ALL_KINDS, BRIDGE_KINDS, INVENTORY, ORDERS, PAYMENTS
from actors.protocols import ActorApi
from actors.runtime import Runtime
from marketplace.domain.orders import OrderStatus
from marketplace.sim.client_target import ClientTarget
from marketplace.sim.faults.injectors import FaultContext, check_targets
from marketplace.sim.faults.plan import parse_plan, schedule
from marketplace.sim.faults.under_load import (
    FaultedRun,
    lost_orders,
    settle_orders,
    simulate_under_faults,
)
from marketplace.sim.seed import seed_market
from marketplace.sim.simulation import SimConfig, build_market
from tests.conftest import SPREAD_OVER_ACTORS, MakeMarketplace
from tests.integration.market import build_market as build_small_market
from tests.integration.test_cli import marketplace, output
from tests.integration.test_events import (
    Broker,
    assert_delivery,
    outbox_ids,
    received_envelopes,
    wait_published,
)

pytestmark = pytest.mark.integration


async def run_plan(runtime: Runtime, faults: list[dict[str, Any]], seconds: float) -> FaultedRun:
    """The simulator's ``om`` load for ``seconds`` with ``faults`` beside it, then the wait
    for every order to end; asserts that every fault was applied and its target healed."""
    client = runtime.client
    assert client is not None
    config = SimConfig(preset="om", rate=25, duration=seconds, seed=3, products=40, buyers=20)
    market = build_market(config)
    target = ClientTarget(client, await seed_market(client, market, write=False))
    counts = {kind.name: client.directory.count(kind) for kind in (*ALL_KINDS, *BRIDGE_KINDS)}
    drawn = schedule(parse_plan({"name": "test", "fault": faults}), seconds, counts, seed=3)
    context = FaultContext(settings=runtime.settings, directory=client.directory)
    check_targets(drawn, context)
    run = await simulate_under_faults(target, market, config, drawn, context)

    assert [w.id for w in run.windows] == [f.id for f in drawn.faults]
    unhealed = [w for w in run.windows if w.healed is None]
    assert not unhealed, unhealed
    assert run.result.summary.ok > 0

    async def pending() -> int:
        return (await client.order_stats()).get("status_pending", 0)

    took, left = await settle_orders(pending, timeout_s=30)
    assert took is not None, f"{left} orders still pending 30 s after the plan"
    # Every order a checkout was told is confirmed is in the store (durability sync).
    acknowledged = target.deliveries.acknowledged
    assert acknowledged and not await lost_orders(client.engine, acknowledged)
    report = await client.audit()
    assert report.ok, report.summary()
    return run


async def check_injected_faults(runtime: Runtime) -> None:
    """Each injected call and card fault, alone, on one checkout: the saga gives up the way the
    fault says, undoes what it did, and the next checkout goes through."""
    client = runtime.client
    assert client is not None
    market = await build_small_market(client, stock=[100, 100], buyers=2)
    buyer = market.buyers[0].id
    items = [{"product_id": market.products[0].id, "quantity": 1}]
    coordinators = client.directory.every(ORDERS)
    processors = client.directory.every(PAYMENTS)

    async def inject(actors: list[Any], fault_id: str, spec: dict[str, Any] | None) -> None:
        for actor in actors:
            await actor.call(ActorApi.inject_fault, fault_id, spec)

    async def order(key: str) -> tuple[OrderStatus, str | None]:
        placed = await client.place_order(buyer, key, items=items)
        return placed.status, placed.failure_reason

    async def order_under(
        actors: list[Any], fault_id: str, spec: dict[str, Any], key: str
    ) -> tuple[OrderStatus, str | None]:
        """Check out with the fault in force until the saga gives up and starts undoing (its
        compensations would retry for as long as the fault lasts), then lift it."""
        before = (await client.order_stats()).get("compensations", 0)
        await inject(actors, fault_id, spec)
        placing = asyncio.ensure_future(order(key))
        try:
            while (await client.order_stats()).get("compensations", 0) == before:
                assert not placing.done(), placing.result()
                await asyncio.sleep(0.05)
        finally:
            await inject(actors, fault_id, None)
        return await asyncio.wait_for(placing, 60)

    lose_reserves = {"type": "link", "target": INVENTORY.name, "drop_rate": 1.0}
    assert await order_under(coordinators, "t-inv", lose_reserves, "k1") == (
        OrderStatus.CANCELLED,
        "inventory_unavailable",
    )
    failing_cards = {"type": "card", "error_rate": 1.0}
    assert await order_under(processors, "t-card", failing_cards, "k2") == (
        OrderStatus.CANCELLED,
        "payment_failed",
    )
    # The charge goes through but its answer is lost: the saga must void it (I2).
    lose_answers = {"type": "link", "target": PAYMENTS.name, "drop_rate": 1.0, "lose": "reply"}
    assert await order_under(coordinators, "t-pay", lose_answers, "k3") == (
        OrderStatus.CANCELLED,
        "payment_failed",
    )

    assert await order("k4") == (OrderStatus.CONFIRMED, None)
    report = await client.audit()
    assert report.ok, report.summary()
    assert (await client.order_stats())["confirmed"] == 1


async def test_actor_kills_card_and_call_faults_and_the_sqlite_lock_keep_the_invariants(
    make_marketplace: MakeMarketplace,
) -> None:
    runtime = await make_marketplace(**SPREAD_OVER_ACTORS)  # a kill takes out half a kind
    await check_injected_faults(runtime)
    run = await run_plan(
        runtime,
        [
            {"kind": "calls", "from": "client", "to": "carts", "at": 0.5, "duration": 2,
             "delay_ms": 30},
            {"kind": "kill_actor", "actor": "inventory", "at": 1.0},
            {"kind": "payments", "at": 1.5, "duration": 2, "error_rate": 0.5, "latency_ms": 20},
            {"kind": "kill_actor", "actor": "orders", "at": 3.0},
            {"kind": "calls", "from": "orders", "to": "inventory", "at": 4.0, "duration": 2,
             "drop_rate": 0.3},
            {"kind": "calls", "from": "orders", "to": "payments", "at": 5.0, "duration": 2,
             "drop_rate": 0.3, "lose": "reply"},
            {"kind": "sqlite_lock", "at": 6.5, "duration": 1.5},
        ],
        seconds=9,
    )  # fmt: skip
    kills = [w for w in run.windows if w.kind == "kill_actor"]
    # A killed actor heals only once a new process answers (not the dying one).
    assert all(w.healed is not None and w.healed > w.applied for w in kills)
    lock = next(w for w in run.windows if w.kind == "sqlite_lock")
    assert lock.lifted - lock.applied >= 1.4
    # A baseline needs 2 s of load before the fault.
    assert all((r.baseline_ok_per_s is not None) == (r.window.applied >= 2) for r in run.recoveries)


@pytest.mark.postgres
async def test_postgres_and_broker_outages_keep_the_invariants_and_lose_no_event(
    broker: Broker, make_marketplace: MakeMarketplace
) -> None:
    tap = await broker.tap()
    runtime = await make_marketplace("postgres", **broker.settings())
    run = await run_plan(
        runtime,
        [
            {"kind": "postgres", "action": "restart", "at": 1.0},
            {"kind": "rabbitmq", "at": 3.0, "duration": 3.0},
            {"kind": "postgres", "action": "stop", "at": 7.0, "duration": 2.0},
            {"kind": "kill_actor", "actor": "relay", "at": 8.5},
        ],
        seconds=10,
    )
    stopped = [w for w in run.windows if w.description.startswith(("stop", "restart"))]
    # Lifted no sooner than its duration after it was applied (the commands take time too).
    assert [w.lifted - w.applied >= d for w, d in zip(stopped, [0, 3, 2], strict=True)] == [
        True
    ] * 3, stopped
    await wait_published(runtime, within_s=120)
    assert_delivery(received_envelopes(await broker.drain(tap)), await outbox_ids(runtime))


def test_a_plan_with_a_bad_field_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text(
        'name = "bad"\n[[fault]]\nkind = "postgres"\naction = "pause"\nat = 1\n'
    )
    ran = marketplace(tmp_path, "simulate", "--duration", "2", "--faults", "plan.toml")
    assert ran.returncode == 2, output(ran)
    assert "fault[0].action" in output(ran)
    assert not (tmp_path / ".marketplace").exists()


def test_a_small_chaos_campaign_runs_each_plan_on_a_fresh_marketplace(
    tmp_path: Path, ray_address: str
) -> None:
    ran = marketplace(
        tmp_path,
        "chaos",
        "--plans", "2",
        "--seed", "5",
        "--scenario", "smoke",  # shortened below
        "--duration", "5",
        "--rate", "20",
        "--products", "30",
        "--buyers", "12",
        "--out", "res",
        MARKETPLACE_RAY_ADDRESS=ray_address,
        MARKETPLACE_ACTOR_NUM_CPUS="0.01",
    )  # fmt: skip
    assert ran.returncode == 0, output(ran)
    assert "Chaos campaign" in ran.stdout and "BROKEN" not in ran.stdout, output(ran)
    plans = sorted(p.name for p in (tmp_path / "res" / "plans").iterdir())
    assert plans == ["chaos-5.toml", "chaos-6.toml"]
    with (tmp_path / "res" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["faults"]).name for row in rows] == plans
    for row in rows:
        assert row["audit_ok"] == "True" and row["faults_unhealed"] == "0", row
        assert int(row["faults_applied"]) >= 1 and row["orders_settled_s"] != "", row
        assert row["orders_lost"] == "0", row
