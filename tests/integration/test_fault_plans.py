"""Fault plans against the real runtime: each kind of fault while the simulator's load runs
(SQLite, PostgreSQL, RabbitMQ), then every order ends within 30 s, the audit is clean and no
event is lost; the injected call and card faults do what they say on a single checkout; and
``marketplace simulate --faults`` as a user runs it.

PostgreSQL and RabbitMQ run on this machine (as in CI); these tests stop and start them, and
the fault runner starts them again whatever happens.
"""

from __future__ import annotations

import asyncio
import json
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
from marketplace.sim.faults.under_load import FaultedRun, settle_orders, simulate_under_faults
from marketplace.sim.seed import seed_market
from marketplace.sim.simulation import SimConfig, build_market
from tests.conftest import MakeMarketplace
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
    report = await client.audit()
    assert report.ok, report.summary()
    return run


async def test_actor_kills_card_and_call_faults_and_the_sqlite_lock_keep_the_invariants(
    make_marketplace: MakeMarketplace,
) -> None:
    runtime = await make_marketplace()
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
    rows = [r.row() for r in run.recoveries]
    assert all((row["baseline_ok_per_s"] is not None) == (row["applied_s"] >= 2) for row in rows)


@pytest.mark.postgres
async def test_postgres_restarted_and_stopped_under_load_keeps_the_invariants(
    make_marketplace: MakeMarketplace,
) -> None:
    runtime = await make_marketplace("postgres")
    run = await run_plan(
        runtime,
        [
            {"kind": "postgres", "action": "restart", "at": 1.0},
            {"kind": "postgres", "action": "stop", "at": 4.0, "duration": 2.0},
        ],
        seconds=8,
    )
    stop = run.windows[1]
    assert stop.lifted - stop.applied >= 2.0


async def test_a_broker_outage_and_a_relay_kill_lose_no_event(
    broker: Broker, make_marketplace: MakeMarketplace
) -> None:
    tap = await broker.tap()
    runtime = await make_marketplace(**broker.settings())
    await run_plan(
        runtime,
        [
            {"kind": "rabbitmq", "at": 1.0, "duration": 3.0},
            {"kind": "kill_actor", "actor": "relay", "at": 5.0},
        ],
        seconds=7,
    )
    await wait_published(runtime, within_s=120)
    assert_delivery(received_envelopes(await broker.drain(tap)), await outbox_ids(runtime))


async def test_injected_faults_do_what_they_say_to_one_checkout(
    make_marketplace: MakeMarketplace,
) -> None:
    runtime = await make_marketplace()
    client = runtime.client
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


def test_marketplace_simulate_with_a_fault_plan(tmp_path: Path, ray_address: str) -> None:
    (tmp_path / "plan.toml").write_text(
        'name = "two"\n'
        '[[fault]]\nkind = "kill_actor"\nactor = "inventory"\nat = 1.5\n'
        '[[fault]]\nkind = "payments"\nat = 3.0\nduration = 1.5\nlatency_ms = 50\n'
    )
    ran = marketplace(
        tmp_path,
        "simulate",
        "--duration", "6",
        "--rate", "30",
        "--products", "40",
        "--buyers", "20",
        "--faults", "plan.toml",
        "--out", "res",
        MARKETPLACE_RAY_ADDRESS=ray_address,
    )  # fmt: skip
    assert ran.returncode == 0, output(ran)
    assert "Faults (plan two, seed 7)" in ran.stdout, output(ran)
    assert "Every order ended" in ran.stdout, output(ran)
    assert "All invariants hold." in ran.stdout, output(ran)
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert [f["kind"] for f in summary["faults"]] == ["kill_actor", "payments"]
    assert summary["fault_plan"] == {"name": "two", "seed": 7}
    assert summary["orders_terminal_after_s"] is not None
    assert (tmp_path / "res" / "faults.csv").read_text().startswith("id,kind,fault,")


def test_a_plan_with_a_bad_field_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text(
        'name = "bad"\n[[fault]]\nkind = "postgres"\naction = "pause"\nat = 1\n'
    )
    ran = marketplace(tmp_path, "simulate", "--duration", "2", "--faults", "plan.toml")
    assert ran.returncode == 2, output(ran)
    assert "fault[0].action" in output(ran)
    assert not (tmp_path / ".marketplace").exists()
