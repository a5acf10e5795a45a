"""The runners: drive a ``Target`` with operations, open loop or closed loop, and time them.

``run_open`` starts each operation at its intended start from an arrival schedule, whether or not
earlier ones have finished, and measures latency from that intended start. A runner that waited
for the target, or timed from when it got round to sending, would hide a stall: the operations
that should have started during it would be sent late and look fast (coordinated omission).
Here they carry the wait in their latency. ``max_in_flight`` bounds the operations outstanding;
those that would exceed it are recorded as dropped, not delayed, so the schedule stays honest.
With ``in_order`` (the default), one customer's operations run one after another in schedule
order: a checkout waits for the add-to-cart before it, as in a browser, and the wait counts in its
latency. Other customers' operations, and sellers' and carriers' (which stand alone), overlap
freely.

``run_closed`` runs agents that each do an operation, wait for it, think, and go again: the load
follows the target's speed, so it measures what a waiting user sees, not a rate's latency.

Both return every operation's ``OpRecord`` (times in seconds from the run's start) and a
``Summary`` (offered and achieved rates, p50/p99 latency per operation kind). ``NullTarget``
answers at once, to measure the generator and the runner themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from marketplace.sim.operations import Operation, session_of

DROPPED = "dropped"
"""The reason code of an operation the open loop did not start: too many were in flight."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an operation ended: ``ok``, or failed with a short machine-readable ``reason``."""

    ok: bool
    reason: str | None = None

    @classmethod
    def failure(cls, reason: str) -> Outcome:
        """A failed outcome with ``reason`` (e.g. ``out_of_stock``, ``timeout``)."""
        return cls(False, reason)


OK = Outcome(True)


class Target(Protocol):
    """What the runners drive: an in-process client, HTTP, or a fake in tests."""

    async def run(self, op: Operation) -> Outcome:
        """Perform ``op`` and say how it went; exceptions count as failures."""
        ...


class NullTarget:
    """Answers every operation at once, successfully."""

    async def run(self, op: Operation) -> Outcome:
        """``OK``, without waiting."""
        return OK


@dataclass(frozen=True, slots=True)
class OpRecord:
    """One operation's timing, in seconds from the run's start.

    ``latency`` is ``ended - intended``. A dropped operation has no ``started``, ``ended`` or
    ``latency``, and the outcome reason ``DROPPED``.
    """

    kind: str
    intended: float
    started: float | None
    ended: float | None
    latency: float | None
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class KindStats:
    """Counts and latency percentiles (seconds, over completed operations) for one kind."""

    count: int
    ok: int
    failed: int
    dropped: int
    p50: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    """Offered rate (what the schedule or agents asked for) against achieved (completed
    operations per second of the run), with totals and per-kind statistics."""

    elapsed: float
    offered_rate: float
    achieved_rate: float
    total: int
    ok: int
    failed: int
    dropped: int
    kinds: dict[str, KindStats]


@dataclass(frozen=True, slots=True)
class RunResult:
    """Every operation's record (in intended start order) and their summary."""

    records: list[OpRecord]
    summary: Summary


async def run_open(
    target: Target,
    schedule: Sequence[float],
    ops: Iterable[Operation],
    *,
    max_in_flight: int = 10_000,
    duration: float | None = None,
    in_order: bool = True,
    on_record: Callable[[OpRecord], None] | None = None,
) -> RunResult:
    """Start ``ops`` at the intended starts of ``schedule`` (seconds, increasing), one each.

    Stops at the shorter of the two. The offered rate is the schedule's length over ``duration``
    (default: the last intended start). ``on_record`` sees each record as it is made (for a
    progress display); it must not block.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be >= 1")
    loop = asyncio.get_running_loop()
    records: list[OpRecord] = []
    in_flight: set[asyncio.Task[None]] = set()
    # Each customer's latest operation: the next one of the same customer waits for it.
    latest: dict[str, asyncio.Task[None]] = {}
    t0 = loop.time()

    def record(entry: OpRecord) -> None:
        records.append(entry)
        if on_record is not None:
            on_record(entry)

    async def one(intended: float, op: Operation, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        started = loop.time() - t0
        outcome = await _attempt(target, op)
        ended = loop.time() - t0
        record(OpRecord(op.kind, intended, started, ended, ended - intended, outcome))

    def forget(session: str | None, task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if session is not None and latest.get(session) is task:
            del latest[session]

    scheduled = 0
    for intended, op in zip(schedule, ops, strict=False):
        scheduled += 1
        delay = t0 + intended - loop.time()
        # Yield even when behind schedule, so started operations run rather than pile up
        # unstarted and count against max_in_flight.
        await asyncio.sleep(max(delay, 0.0))
        if len(in_flight) >= max_in_flight:
            record(OpRecord(op.kind, intended, None, None, None, Outcome.failure(DROPPED)))
            continue
        session = session_of(op) if in_order else None
        before = latest.get(session) if session is not None else None
        task = asyncio.create_task(one(intended, op, before))
        in_flight.add(task)
        if session is not None:
            latest[session] = task
        task.add_done_callback(functools.partial(forget, session))
    if in_flight:
        await asyncio.gather(*list(in_flight))
    elapsed = loop.time() - t0
    horizon = duration if duration is not None else (schedule[scheduled - 1] if scheduled else 0)
    records.sort(key=lambda record: record.intended)
    return RunResult(records, summarize(records, elapsed, _rate(scheduled, horizon)))


async def run_closed(
    target: Target,
    agents: int,
    think_time: float,
    duration: float,
    next_op: Callable[[float], Operation],
    *,
    on_record: Callable[[OpRecord], None] | None = None,
) -> RunResult:
    """``agents`` agents each run ``next_op(t)``, wait for it, think ``think_time`` seconds,
    and repeat until ``duration`` seconds have passed (operations under way are finished).

    Agents start spread over one think time, so they do not move in lockstep. An operation's
    intended start is when its agent drew it: a closed loop has no schedule to be late for. The
    offered rate is what the agents would do against an instant target, ``agents / think_time``.
    """
    if agents < 1:
        raise ValueError("agents must be >= 1")
    if think_time <= 0:
        raise ValueError("think_time must be > 0")
    loop = asyncio.get_running_loop()
    records: list[OpRecord] = []
    t0 = loop.time()

    # Agents share one stream, so a customer's session can be spread over several agents: a
    # customer's operations take its lock in the order they were drawn (asyncio locks are FIFO).
    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
    free = contextlib.nullcontext()

    async def agent(index: int) -> None:
        await asyncio.sleep(think_time * index / agents)
        while (started := loop.time() - t0) < duration:
            op = next_op(started)
            session = session_of(op)
            async with free if session is None else locks[session]:
                outcome = await _attempt(target, op)
            ended = loop.time() - t0
            entry = OpRecord(op.kind, started, started, ended, ended - started, outcome)
            records.append(entry)
            if on_record is not None:
                on_record(entry)
            await asyncio.sleep(think_time)

    await asyncio.gather(*(agent(i) for i in range(agents)))
    elapsed = loop.time() - t0
    records.sort(key=lambda record: record.intended)
    return RunResult(records, summarize(records, elapsed, agents / think_time))


def _rate(count: int, seconds: float) -> float:
    # A whole schedule at time 0 offers without bound; an empty one offers nothing.
    if seconds > 0:
        return count / seconds
    return math.inf if count else 0.0


async def _attempt(target: Target, op: Operation) -> Outcome:
    # A target that raises still answered: the run goes on and the failure is counted.
    try:
        return await target.run(op)
    except Exception as exc:
        return Outcome.failure(f"exception:{type(exc).__name__}")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; None when empty."""
    if not 0 < q <= 100:
        raise ValueError("q must be within (0, 100]")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(records: Sequence[OpRecord], elapsed: float, offered_rate: float) -> Summary:
    """Totals, the achieved rate over ``elapsed`` seconds and per-kind statistics."""
    by_kind: defaultdict[str, list[OpRecord]] = defaultdict(list)
    for record in records:
        by_kind[record.kind].append(record)
    kinds = {kind: _kind_stats(group) for kind, group in sorted(by_kind.items())}
    dropped = sum(stats.dropped for stats in kinds.values())
    ok = sum(stats.ok for stats in kinds.values())
    completed = len(records) - dropped
    return Summary(
        elapsed=elapsed,
        offered_rate=offered_rate,
        achieved_rate=_rate(completed, elapsed),
        total=len(records),
        ok=ok,
        failed=completed - ok,
        dropped=dropped,
        kinds=kinds,
    )


def _kind_stats(records: Sequence[OpRecord]) -> KindStats:
    latencies = [r.latency for r in records if r.latency is not None]
    ok = sum(1 for r in records if r.outcome.ok)
    dropped = sum(1 for r in records if r.started is None)
    return KindStats(
        count=len(records),
        ok=ok,
        failed=len(records) - ok - dropped,
        dropped=dropped,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
    )
