"""The open and closed loops: honest timing under stalls, the in-flight bound, closed-loop
throughput. Short runs (about a second or two each) against fake targets."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from marketplace.sim.arrivals import poisson
from marketplace.sim.loops import (
    DROPPED,
    OK,
    NullTarget,
    Outcome,
    percentile,
    run_closed,
    run_open,
)
from marketplace.sim.market import generate_market
from marketplace.sim.operations import Browse, Operation, actor_of, session_of
from marketplace.sim.presets import preset
from marketplace.sim.simulation import SimConfig, build_market, schedule_for, workload_for
from marketplace.sim.workload import Workload

pytestmark = pytest.mark.unit

MARKET = generate_market(5, sellers=3, products=50, buyers=20)


def steady(rate: float, duration: float) -> list[float]:
    """Evenly spaced intended starts: easier to reason about than Poisson in timing tests."""
    return [i / rate for i in range(int(rate * duration))]


def browses(n: int) -> list[Operation]:
    return [Browse("buyer", f"prd_{i}") for i in range(n)]


class SerialStall:
    """One request at a time (like a single-threaded server); the call intended at
    ``stall_at`` holds the line for ``seconds``."""

    def __init__(self, stall_at: float, seconds: float) -> None:
        self.lock = asyncio.Lock()
        self.stall_at = stall_at
        self.seconds = seconds
        self.calls = 0

    async def run(self, op: Operation) -> Outcome:
        async with self.lock:
            self.calls += 1
            if self.calls == int(self.stall_at * 100) + 1:
                await asyncio.sleep(self.seconds)
        return OK


async def test_the_null_target_keeps_up_with_the_schedule() -> None:
    workload = Workload(MARKET, preset("om"), random.Random(1))
    schedule = poisson(random.Random(2), rate=300, duration=1.0)
    result = await run_open(NullTarget(), schedule, workload.stream(schedule), duration=1.0)
    summary = result.summary
    assert summary.total == len(schedule) == summary.ok
    assert summary.offered_rate == pytest.approx(len(schedule))
    # Loose bounds: this shares the machine with everything else the suite runs.
    assert summary.achieved_rate == pytest.approx(summary.offered_rate, rel=0.5)
    assert all(r.latency is not None and r.latency < 1.0 for r in result.records)
    assert set(summary.kinds) <= {"browse", "search", "add_to_cart", "checkout"} | {
        "read_dashboard", "update_price", "update_product", "move_shipment",
    }  # fmt: skip


async def test_operations_queued_behind_a_stall_carry_the_wait() -> None:
    # 100 operations a second for 2 s; the call at 0.5 s holds a serial target for 1 s.
    schedule = steady(100, 2.0)
    result = await run_open(SerialStall(0.5, 1.0), schedule, browses(len(schedule)))
    records = result.records
    assert result.summary.ok == len(schedule)
    stats = result.summary.kinds["browse"]
    assert stats.p99 is not None and stats.p99 >= 0.9
    # Every operation due during the stall waited until it ended (about 1.5 s into the run),
    # and its latency counts from when it was due, so the earliest waited the longest.
    during = [r for r in records if 0.5 <= r.intended < 1.4]
    for record in during:
        assert record.latency is not None and record.ended is not None
        assert record.ended >= 1.45
        assert record.latency == pytest.approx(record.ended - record.intended)
        assert record.latency >= 1.45 - record.intended
    # After the stall the target is quick again: no later operation carries the whole second.
    after = [r.latency for r in records if r.intended >= 1.8 and r.latency is not None]
    assert after
    assert max(after) < 0.9


class BlockingStall:
    """A target that blocks the event loop (a synchronous call) for ``seconds`` once: the
    runner itself cannot start anything on time while it lasts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.stalled = False

    async def run(self, op: Operation) -> Outcome:
        if isinstance(op, Browse) and op.product_id == "prd_50" and not self.stalled:
            self.stalled = True
            time.sleep(self.seconds)  # noqa: ASYNC251 - blocking on purpose
        return OK


async def test_late_starts_are_measured_from_the_intended_start() -> None:
    schedule = steady(100, 2.0)  # prd_50 is due at 0.5 s and blocks the loop until ~1.5 s
    result = await run_open(BlockingStall(1.0), schedule, browses(len(schedule)))
    stats = result.summary.kinds["browse"]
    assert stats.p99 is not None and stats.p99 >= 0.9
    late = [r for r in result.records if 0.55 <= r.intended < 1.3]
    assert late
    for record in late:
        assert record.started is not None and record.latency is not None
        # Sent late by the stalled runner; an honest latency includes the lateness.
        assert record.started - record.intended >= 0.15
        assert record.latency >= record.started - record.intended


async def test_operations_beyond_the_in_flight_bound_are_dropped_not_delayed() -> None:
    class Slow:
        async def run(self, op: Operation) -> Outcome:
            await asyncio.sleep(1.0)  # outlasts the schedule: the first five hold every slot
            return OK

    schedule = steady(100, 0.5)
    result = await run_open(Slow(), schedule, browses(len(schedule)), max_in_flight=5)
    summary = result.summary
    assert summary.total == len(schedule)
    assert summary.ok == 5
    assert summary.dropped == len(schedule) - 5
    dropped = [r for r in result.records if r.started is None]
    assert len(dropped) == summary.dropped
    assert all(r.outcome.reason == DROPPED and r.latency is None for r in dropped)


async def test_a_target_that_raises_counts_as_a_failure() -> None:
    class Broken:
        async def run(self, op: Operation) -> Outcome:
            raise RuntimeError("boom")

    result = await run_open(Broken(), [0.0, 0.01], browses(2))
    assert result.summary.failed == 2
    assert {r.outcome.reason for r in result.records} == {"exception:RuntimeError"}


async def test_the_closed_loop_runs_agents_times_duration_over_think_time() -> None:
    workload = Workload(MARKET, preset("browse"), random.Random(3))
    agents, think, duration = 10, 0.05, 1.0
    result = await run_closed(NullTarget(), agents, think, duration, workload.next_op)
    expected = agents * duration / think  # 200
    assert expected * 0.5 <= result.summary.total <= expected * 1.1
    assert result.summary.offered_rate == pytest.approx(agents / think)
    assert all(r.started == r.intended for r in result.records)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None


class Overlaps:
    """Records, per actor, the order operations ran in, and how often two of one customer's
    (``overlapped``) or of one seller or carrier (``others_overlapped``) ran at once."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.running: set[str] = set()
        self.order: dict[str, list[Operation]] = {}
        self.overlapped = 0
        self.others_overlapped = 0

    async def run(self, op: Operation) -> Outcome:
        actor = actor_of(op)
        if actor in self.running:
            if session_of(op) is None:
                self.others_overlapped += 1
            else:
                self.overlapped += 1
        self.running.add(actor)
        self.order.setdefault(actor, []).append(op)
        await asyncio.sleep(self.rng.uniform(0.0, 0.03))
        self.running.discard(actor)
        return OK


def by_customer(ops: list[Operation]) -> dict[str, list[Operation]]:
    grouped: dict[str, list[Operation]] = {}
    for op in ops:
        if (customer := session_of(op)) is not None:
            grouped.setdefault(customer, []).append(op)
    return grouped


def customers_only(order: dict[str, list[Operation]]) -> dict[str, list[Operation]]:
    return by_customer([op for ops in order.values() for op in ops])


async def test_the_open_loop_runs_each_customers_operations_in_order() -> None:
    # Few buyers, fast arrivals and random service times: without the per-actor chain a
    # customer's checkout would regularly overtake its own add-to-cart.
    market = generate_market(3, sellers=2, products=30, buyers=4)
    schedule = steady(400, 1.0)
    ops = list(Workload(market, preset("om"), random.Random(3)).stream(schedule))
    target = Overlaps(1)
    result = await run_open(target, schedule, ops)
    assert result.summary.ok == len(ops)
    assert target.overlapped == 0
    assert customers_only(target.order) == by_customer(ops)
    # Sellers' and carriers' operations stand alone, so the loop lets them overlap.
    assert target.others_overlapped > 0


async def test_without_in_order_the_same_actor_overlaps() -> None:
    # The control for the test above: the target does see overlaps when ordering is off.
    market = generate_market(3, sellers=2, products=30, buyers=4)
    schedule = steady(400, 1.0)
    ops = list(Workload(market, preset("om"), random.Random(3)).stream(schedule))
    target = Overlaps(1)
    await run_open(target, schedule, ops, in_order=False)
    assert target.overlapped > 0


async def test_the_closed_loop_never_runs_one_customer_twice_at_once() -> None:
    market = generate_market(3, sellers=2, products=30, buyers=2)
    workload = Workload(market, preset("om"), random.Random(4))
    drawn: list[Operation] = []

    def next_op(t: float) -> Operation:
        drawn.append(workload.next_op(t))
        return drawn[-1]

    target = Overlaps(2)
    await run_closed(target, agents=12, think_time=0.01, duration=0.6, next_op=next_op)
    assert target.overlapped == 0
    assert customers_only(target.order) == by_customer(drawn)


def test_the_same_config_gives_the_same_schedule_and_operations() -> None:
    config = SimConfig(preset="flash", rate=300, duration=5, seed=11, products=60, buyers=20)
    first, second = (
        (schedule_for(config), list(workload_for(build_market(config), config).stream(times)))
        for times in (schedule_for(config), schedule_for(config))
    )
    assert first == second
    other = SimConfig(preset="flash", rate=300, duration=5, seed=12, products=60, buyers=20)
    assert schedule_for(other) != first[0]
