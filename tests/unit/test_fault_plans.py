"""Fault plans without a runtime: a bad field is refused by name, the same seed draws the same
faults, a fault with nothing to hit here is refused before a run, the recovery arithmetic, and
the call layer's injected delays and losses."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from actors.directory import Directory
from actors.faults import CallLost, LinkFault, ProcessFaults, fault_from
from marketplace.config import Settings
from marketplace.sim.experiments.points import expand
from marketplace.sim.experiments.spec import METRICS, SpecError, spec_from_mapping
from marketplace.sim.faults import runner
from marketplace.sim.faults.injectors import FaultContext, check_targets
from marketplace.sim.faults.plan import (
    PlanError,
    builtin_plans,
    load_plan,
    parse_plan,
    schedule,
)
from marketplace.sim.faults.random_plans import plan_toml, random_plan
from marketplace.sim.faults.recovery import FaultWindow, is_error, recoveries
from marketplace.sim.faults.under_load import NO_FAULT_METRICS, FaultedRun, fault_metrics
from marketplace.sim.loops import OK, OpRecord, Outcome, RunResult, summarize
from marketplace.sim.simulation import SimConfig

pytestmark = pytest.mark.unit

COUNTS = {"inventory": 4, "orders": 3, "payments": 2, "catalog": 2}


def plan(*faults: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "p", **top, "fault": list(faults)}


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ({"kind": "postgres", "action": "pause", "at": 1}, "fault[0].action"),
        ({"kind": "kill_actor", "actor": "cashier", "at": 1}, "fault[0].actor"),
        ({"kind": "kill_actor", "actor": "orders", "at": -1}, "fault[0].at"),
        (
            {
                "kind": "calls",
                "from": "orders",
                "to": "inventory",
                "at": 1,
                "duration": 2,
                "drop_rate": 1.5,
            },
            "fault[0].drop_rate",
        ),
        (
            {"kind": "payments", "at": 1, "duration": 2, "error_rate": 0.5, "colour": 1},
            "fault[0].colour",
        ),
        ({"kind": "nap", "at": 1}, "fault[0]"),
    ],
)
def test_a_bad_field_is_refused_with_its_name(fault: dict[str, Any], named: str) -> None:
    with pytest.raises(PlanError) as refused:
        parse_plan(plan(fault), source="plan.toml")
    assert str(refused.value).startswith("plan.toml: ")
    assert f"{named}:" in str(refused.value) or f"{named}." in str(refused.value)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "kill_actor", "actor": "orders"}, "exactly one of at"),
        ({"kind": "kill_actor", "actor": "orders", "at": 1, "every": 5}, "exactly one of at"),
        ({"kind": "sqlite_lock", "at": 1}, "needs duration > 0"),
        ({"kind": "payments", "at": 1, "duration": 2}, "latency_ms > 0 or error_rate > 0"),
        (
            {"kind": "calls", "from": "orders", "to": "carts", "at": 1, "duration": 2},
            "delay_ms > 0 or drop_rate > 0",
        ),
        (
            {"kind": "payments", "at": 1, "duration": 1, "error_rate": 1, "window": [1, 2]},
            "window goes with every",
        ),
    ],
)
def test_an_incoherent_fault_is_refused(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plan(plan(fault))


def test_a_plan_needs_a_fault() -> None:
    with pytest.raises(PlanError, match="at least one"):
        parse_plan({"name": "empty", "fault": []})


def test_every_builtin_plan_loads_and_schedules() -> None:
    names = builtin_plans()
    assert {"kills", "flaky-payments", "lossy-calls", "sqlite-lock"} <= set(names)
    for name in names:
        drawn = schedule(load_plan(name), 30.0, COUNTS, seed=1)
        assert drawn.faults, name
        assert [f.start for f in drawn.faults] == sorted(f.start for f in drawn.faults)


def test_an_unknown_plan_name_lists_the_builtins() -> None:
    with pytest.raises(PlanError, match="kills"):
        load_plan("no-such-plan")


RANDOM = plan(
    {"kind": "kill_actor", "actor": "inventory", "every": 4.0},
    {"kind": "payments", "every": 6.0, "duration": 1.0, "error_rate": 0.3, "window": [5, 40]},
    {"kind": "kill_actor", "actor": "orders", "at": 2.0},
)


def drawn_of(seed: int) -> list[tuple[float, str, int | None, float, int]]:
    faults = schedule(parse_plan(RANDOM), 60.0, COUNTS, seed=seed).faults
    return [(f.start, f.describe(), f.index, f.pick, f.seed) for f in faults]


def test_the_same_seed_replays_the_same_faults_and_another_does_not() -> None:
    assert drawn_of(3) == drawn_of(3)
    assert drawn_of(3) != drawn_of(4)


def test_drawn_faults_respect_their_windows_and_the_actor_counts() -> None:
    faults = schedule(parse_plan(RANDOM), 60.0, COUNTS, seed=5).faults
    kills = [f for f in faults if f.kind == "kill_actor" and f.start != 2.0]
    cards = [f for f in faults if f.kind == "payments"]
    # About 60 / 4 kills: Poisson, so only loosely.
    assert 5 <= len(kills) <= 30
    assert {f.index for f in kills} <= set(range(COUNTS["inventory"]))
    assert len({f.index for f in kills}) > 1
    assert cards and all(5 <= f.start < 40 for f in cards)
    assert all(f.end == f.start + 1.0 for f in cards)


def test_a_plans_own_seed_wins_over_the_runs() -> None:
    seeded = parse_plan({**RANDOM, "seed": 11})
    assert (
        schedule(seeded, 60, COUNTS, seed=1).faults == schedule(seeded, 60, COUNTS, seed=2).faults
    )


def test_an_index_beyond_the_actor_count_is_refused() -> None:
    bad = parse_plan(plan({"kind": "kill_actor", "actor": "payments", "index": 2, "at": 1}))
    with pytest.raises(PlanError, match=r"fault\[0\].index: payments has 2"):
        schedule(bad, 10, COUNTS)


# The replicas' polls of their shards all lost for a second: replication stalls.
STALLED_REPLICATION = {
    "kind": "calls",
    "from": "replicas",
    "to": "catalog",
    "at": 1,
    "duration": 1,
    "drop_rate": 1.0,
}


def context(**settings: Any) -> FaultContext:
    values = Settings(**settings)
    return FaultContext(settings=values, directory=Directory(values), via="client")


@pytest.mark.parametrize(
    ("fault", "settings", "message"),
    [
        (
            {"kind": "postgres", "at": 1, "duration": 2},
            {"database_url": "sqlite:///x.db"},
            "does not run on PostgreSQL",
        ),
        (
            {"kind": "postgres", "action": "restart", "at": 1},
            {"database_url": "postgresql://db.example.com/shop"},
            "not on this machine",
        ),
        (
            {"kind": "sqlite_lock", "at": 1, "duration": 2},
            {"database_url": "postgresql://127.0.0.1/test"},
            "SQLite file",
        ),
        ({"kind": "rabbitmq", "at": 1, "duration": 2}, {}, "no broker configured"),
        ({"kind": "kill_actor", "actor": "relay", "at": 1}, {}, "without a broker"),
        ({"kind": "kill_replica", "at": 1}, {}, "needs --via http"),
        ({"kind": "kill_actor", "actor": "replicas", "at": 1}, {}, "no catalog read replica"),
        (
            STALLED_REPLICATION,
            {},
            "no catalog read replica",
        ),
        (
            {
                "kind": "calls",
                "from": "client",
                "to": "replicas",
                "at": 1,
                "duration": 1,
                "delay_ms": 5,
            },
            {},
            "no catalog read replica",
        ),
    ],
)
def test_a_fault_with_nothing_to_hit_is_refused_before_the_run(
    fault: dict[str, Any], settings: dict[str, Any], message: str
) -> None:
    drawn = schedule(parse_plan(plan(fault)), 10, COUNTS)
    with pytest.raises(PlanError, match=message):
        check_targets(drawn, context(**settings))


def test_faults_that_have_a_target_pass_the_check() -> None:
    drawn = schedule(
        parse_plan(
            plan(
                {"kind": "sqlite_lock", "at": 1, "duration": 2},
                {"kind": "kill_actor", "actor": "orders", "at": 1},
                {
                    "kind": "calls",
                    "from": "client",
                    "to": "orders",
                    "at": 1,
                    "duration": 1,
                    "delay_ms": 5,
                },
            )
        ),
        10,
        COUNTS,
    )
    check_targets(drawn, context(database_url="sqlite:///shop.db"))


def test_replica_faults_pass_the_check_where_replicas_run() -> None:
    drawn = schedule(
        parse_plan(
            plan(
                {"kind": "kill_actor", "actor": "replicas", "at": 1},
                STALLED_REPLICATION,
            )
        ),
        10,
        {**COUNTS, "replicas": 2},
    )
    check_targets(drawn, context(catalog_shards=2, catalog_replicas=1))
    assert drawn.faults[0].describe().startswith("kill replicas-")


def ok(t: float, latency: float = 0.01) -> OpRecord:
    return OpRecord("browse", t, t, t + latency, latency, OK)


def failed(t: float, reason: str, latency: float = 0.01) -> OpRecord:
    return OpRecord("checkout", t, t, t + latency, latency, Outcome.failure(reason))


def steady(start: float, stop: float, per_s: int = 10) -> list[OpRecord]:
    n = int((stop - start) * per_s)
    return [ok(start + i / per_s) for i in range(n)]


def test_recovery_is_the_first_window_back_at_throughput_without_errors() -> None:
    # 10 ok/s until 10 s; nothing completes from 10 to 14 s; errors until 15 s; then steady.
    records = steady(0, 10) + steady(15, 30)
    records += [failed(14.5, "transient_failure"), failed(14.9, "pending")]
    records += [failed(12.0, "out_of_stock")]  # the market saying no is not an error
    window = FaultWindow("f0", "kill_actor", "kill orders-0", 10.0, 10.0, 11.0)
    (recovery,) = recoveries(records, [window], 30.0)
    assert recovery.baseline_ok_per_s == pytest.approx(10.0)
    assert recovery.recovered_at == 15.0
    assert recovery.time_to_recover == 5.0
    assert recovery.errors == {"checkout:transient_failure": 1, "checkout:pending": 1}
    assert recovery.pending == 1


def test_a_run_that_never_gets_back_has_no_recovery() -> None:
    records = steady(0, 10) + steady(10, 30, per_s=5)  # half the throughput after the fault
    window = FaultWindow("f0", "payments", "card network", 10.0, 12.0, 12.0)
    (recovery,) = recoveries(records, [window], 30.0)
    assert recovery.recovered_at is None
    assert recovery.time_to_recover is None
    assert recovery.row()["time_to_recover_s"] is None


def test_recovery_is_searched_from_when_the_fault_was_lifted() -> None:
    records = steady(0, 30)  # nothing visible happened
    window = FaultWindow("f0", "sqlite_lock", "lock", 10.0, 13.0, 13.0)
    (recovery,) = recoveries(records, [window], 30.0)
    assert recovery.recovered_at == 13.0


def test_errors_are_the_system_failing_not_the_market_saying_no() -> None:
    assert is_error(failed(1, "http_5xx"))
    assert is_error(failed(1, "exception:CallLost"))
    assert is_error(failed(1, "inventory_unavailable"))
    assert not is_error(failed(1, "payment_declined"))
    assert not is_error(ok(1))


async def test_a_link_fault_delays_and_loses_calls_to_its_target_only() -> None:
    faults = ProcessFaults()
    done: list[str] = []

    async def work(name: str) -> str:
        done.append(name)
        return name

    faults.inject("f0", LinkFault(target="inventory", drop_rate=0.5, seed=1))
    outcomes: list[str | None] = []
    for i in range(200):
        try:
            outcomes.append(await faults.through("inventory", partial(work, f"i{i}")))
        except CallLost:
            outcomes.append(None)
    lost = outcomes.count(None)
    assert 60 < lost < 140
    assert len(done) == 200 - lost  # a lost request never reached the actor
    assert faults.touches("inventory") and not faults.touches("payments")
    faults.inject("f0", None)
    assert not faults.touches("inventory") and faults.active() == []


async def test_a_lost_reply_comes_after_the_work_was_done() -> None:
    faults = ProcessFaults()
    done: list[int] = []

    async def work(i: int) -> int:
        done.append(i)
        return i

    faults.inject(
        "f1", fault_from({"type": "link", "target": "payments", "drop_rate": 1.0, "lose": "reply"})
    )
    with pytest.raises(CallLost, match="answer from payments"):
        await faults.through("payments", lambda: work(1))
    assert done == [1]


async def test_the_same_fault_seed_loses_the_same_calls() -> None:
    async def pattern(seed: int) -> list[bool]:
        faults = ProcessFaults()
        faults.inject("f0", LinkFault(target="orders", drop_rate=0.3, seed=seed))
        lost = []
        for _ in range(50):
            try:
                await faults.through("orders", lambda: asyncio.sleep(0))
                lost.append(False)
            except CallLost:
                lost.append(True)
        return lost

    assert await pattern(1) == await pattern(1)
    assert await pattern(1) != await pattern(2)


async def test_a_card_fault_fails_its_share_of_calls_and_adds_latency() -> None:
    faults = ProcessFaults()
    faults.inject("f0", fault_from({"type": "card", "error_rate": 0.5, "latency_s": 0.001}))
    failures = [await faults.card_network() for _ in range(200)]
    assert 60 < sum(failures) < 140
    faults.inject("f0", None)
    assert not any([await faults.card_network() for _ in range(20)])


def test_a_short_run_keeps_only_the_faults_that_start_within_it() -> None:
    kills = load_plan("kills")  # at 5, 12 and 19 s
    assert [f.start for f in schedule(kills, 30.0, COUNTS).faults] == [5.0, 12.0, 19.0]
    assert [f.start for f in schedule(kills, 8.0, COUNTS).faults] == [5.0]


def test_faults_is_a_workload_knob_that_names_a_plan() -> None:
    assert SimConfig(faults="kills").fault_plan is not None
    assert SimConfig(faults="none").fault_plan is None
    assert SimConfig().fault_plan is None
    assert "faults kills" in SimConfig(faults="kills").describe()
    with pytest.raises(PlanError, match="no-such-plan"):
        SimConfig(faults="no-such-plan")
    spec = spec_from_mapping({"name": "x", "sweep": {"faults": ["none", "kills"]}})
    assert [p.config.faults for p in expand(spec)] == ["none", "kills"]
    with pytest.raises(SpecError, match=r"sweep.faults\[1\]: nope"):
        spec_from_mapping({"name": "x", "sweep": {"faults": ["none", "nope"]}})


def test_fault_metrics_sum_up_a_run() -> None:
    records = steady(0, 10) + steady(15, 30)
    windows = [
        FaultWindow("f0", "kill_actor", "kill orders-0", 10.0, 10.0, 11.0),
        FaultWindow("f1", "payments", "cards", 20.0, 22.0, None),
    ]
    found = recoveries(records, windows, 30.0)
    run = FaultedRun(RunResult(records, summarize(records, 30.0, 10.0)), windows, found)
    columns = fault_metrics(run, 1.5)
    assert columns == {
        "faults_applied": 2,
        "faults_unhealed": 1,
        "max_recovery_s": 5.0,
        "mean_recovery_s": 3.5,  # 5 s for the kill, 2 s (from its lift at 22 s) for the cards
        "unrecovered_faults": 0,
        "fault_errors": 0,
        "orders_settled_s": 1.5,
        "orders_lost": None,
    }
    assert set(columns) == set(NO_FAULT_METRICS) <= set(METRICS)


def test_random_plans_are_drawn_from_their_seed_and_read_back_from_their_toml(
    tmp_path: Path,
) -> None:
    kinds = ["kill_actor", "payments", "calls", "sqlite_lock"]
    plans = [random_plan(seed, 20.0, kinds) for seed in range(30)]
    assert plans[3] == random_plan(3, 20.0, kinds)
    assert len({plan_toml(p) for p in plans}) == 30
    drawn = [fault for plan in plans for fault in plan.faults]
    assert {f.describe_kind() for f in drawn} == set(kinds)
    # Faults start in the first three quarters of the run, so that recovery can show.
    assert all(f.at is not None and 0 < f.at <= 15.0 for f in drawn)
    for plan in plans:
        path = tmp_path / f"{plan.name}.toml"
        path.write_text(plan_toml(plan))
        assert load_plan(path) == plan
    assert {f.describe_kind() for f in random_plan(1, 20.0, ["payments"]).faults} == {"payments"}


def test_random_plans_hit_the_catalog_replicas_only_where_they_run() -> None:
    kinds = ["kill_actor", "calls"]

    def targets(**where: bool) -> set[str]:
        faults = [f for seed in range(60) for f in random_plan(seed, 20.0, kinds, **where).faults]
        return {getattr(f, "actor", None) or getattr(f, "source", "") for f in faults} | {
            getattr(f, "target", "") for f in faults
        }

    assert "replicas" not in targets()
    assert "replicas" in targets(replicas=True)
    for seed in range(60):
        for fault in random_plan(seed, 20.0, ["calls"], replicas=True).faults:
            if getattr(fault, "source", "") == "replicas":
                assert getattr(fault, "target", "") == "catalog"


class FakeInjector:
    """Records what the runner does with it; ``fail`` makes ``apply`` raise."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[str] = []

    async def apply(self) -> None:
        self.calls.append("apply")
        if self.fail:
            raise RuntimeError("no such replica")

    async def lift(self) -> None:
        await asyncio.sleep(0.05)  # a lift that takes a while (starting a database)
        self.calls.append("lift")

    async def healthy(self) -> bool:
        return True


def fake_schedule(*faults: dict[str, Any]) -> Any:
    return schedule(parse_plan(plan(*faults)), 10, COUNTS)


async def test_a_fault_that_cannot_be_applied_is_recorded_and_the_others_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = {"f0": FakeInjector(fail=True), "f1": FakeInjector()}
    monkeypatch.setattr(runner, "injector_for", lambda scheduled, _: made[scheduled.id])
    drawn = fake_schedule(
        {"kind": "kill_actor", "actor": "orders", "at": 0.0},
        {"kind": "sqlite_lock", "at": 0.01, "duration": 0.05},
    )
    loop = asyncio.get_running_loop()
    windows = await runner.run_faults(drawn, context(), started=loop.time())
    assert [w.error for w in windows] == ["RuntimeError: no such replica", None]
    assert made["f0"].calls == ["apply", "lift"] and made["f1"].calls == ["apply", "lift"]
    assert windows[1].lifted - windows[1].applied >= 0.05


async def test_a_cancelled_run_still_lifts_what_it_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    injector = FakeInjector()
    monkeypatch.setattr(runner, "injector_for", lambda scheduled, _: injector)
    drawn = fake_schedule({"kind": "sqlite_lock", "at": 0.0, "duration": 30.0})
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(runner.run_faults(drawn, context(), started=loop.time()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert injector.calls == ["apply", "lift"]  # the lift finished before the cancel went on


def test_a_killed_actor_cannot_have_recovered_before_it_answers_again() -> None:
    # A kill is lifted the moment it is applied; throughput (mostly other operations) barely
    # dips, but the run has not recovered until the actor is back (healed at 14 s).
    records = steady(0, 30)
    window = FaultWindow("f0", "kill_actor", "kill inventory-0", 10.0, 10.0, 14.0)
    (recovery,) = recoveries(records, [window], 30.0)
    assert recovery.recovered_at == 14.0 and recovery.time_to_recover == 4.0
