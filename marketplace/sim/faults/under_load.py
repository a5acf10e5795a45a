"""A simulation with a fault plan beside it, and the wait for its orders to end afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketplace.sim.faults.injectors import FaultContext, check_targets
from marketplace.sim.faults.plan import FaultPlan, Schedule, schedule
from marketplace.sim.faults.recovery import FAULT_COLUMNS, FaultWindow, Recovery, recoveries
from marketplace.sim.faults.runner import Say, run_faults
from marketplace.sim.loops import OpRecord, RunResult, Target
from marketplace.sim.market import SyntheticMarket
from marketplace.sim.simulation import SimConfig, simulate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from actors.directory import Directory
    from marketplace.config import Settings

SETTLE_TIMEOUT_S = 30.0
"""After the plan ends, every order must be terminal within this long (issue #21)."""


@dataclass(frozen=True)
class FaultedRun:
    """A simulation's result, with when each fault applied and what it did."""

    result: RunResult
    windows: list[FaultWindow]
    recoveries: list[Recovery]


def plan_for_run(
    plan: FaultPlan, config: SimConfig, settings: Settings, directory: Directory, via: str
) -> tuple[Schedule, FaultContext]:
    """``plan``'s faults for a run of ``config`` (its duration and seed) against the runtime
    that ``settings`` and ``directory`` describe; raises ``PlanError`` when a fault has nothing
    to act on there."""
    from actors.directory import ALL_KINDS, BRIDGE_KINDS, REPLICAS

    counts = {kind.name: directory.count(kind) for kind in (*ALL_KINDS, *BRIDGE_KINDS, REPLICAS)}
    context = FaultContext(settings=settings, directory=directory, via=via)
    drawn = schedule(plan, config.duration, counts, seed=config.seed)
    check_targets(drawn, context)
    return drawn, context


def fault_metrics(run: FaultedRun, settled_after_s: float | None) -> dict[str, Any]:
    """An experiment row's fault columns: faults applied and not healed (or not applied at all:
    the run could not do what the plan says), the longest and mean
    time to recover (over those that recovered), faults the run never recovered from, errors
    while they lasted, and how long the orders took to end after the plan."""
    times = [r.time_to_recover for r in run.recoveries if r.time_to_recover is not None]
    return {
        "faults_applied": len(run.windows),
        "faults_unhealed": sum(1 for w in run.windows if w.healed is None or w.error),
        "max_recovery_s": max(times, default=None),
        "mean_recovery_s": round(sum(times) / len(times), 3) if times else None,
        "unrecovered_faults": sum(1 for r in run.recoveries if r.time_to_recover is None),
        "fault_errors": sum(sum(r.errors.values()) for r in run.recoveries),
        "orders_settled_s": settled_after_s,
        "orders_lost": None,  # set where durability is sync (the runner looks them up)
    }


NO_FAULT_METRICS: dict[str, Any] = dict.fromkeys(FAULT_COLUMNS)
"""The fault columns of a row that ran no plan."""


async def simulate_under_faults(
    target: Target,
    market: SyntheticMarket,
    config: SimConfig,
    schedule: Schedule,
    context: FaultContext,
    *,
    on_record: Callable[[OpRecord], None] | None = None,
    say: Say | None = None,
) -> FaultedRun:
    """Run ``config``'s workload against ``target`` while ``schedule``'s faults happen, timed
    from the load's start; return once the load has ended and every fault is lifted and its
    target answers (or its heal timeout passed)."""
    started = asyncio.get_running_loop().time()
    faults = asyncio.create_task(run_faults(schedule, context, started=started, say=say))
    try:
        result = await simulate(target, market, config, on_record=on_record)
    except BaseException:
        faults.cancel()
        await asyncio.gather(faults, return_exceptions=True)
        raise
    windows = await faults
    return FaultedRun(
        result=result,
        windows=windows,
        recoveries=recoveries(result.records, windows, result.summary.elapsed),
    )


async def lost_orders(engine: AsyncEngine, acknowledged: list[str]) -> list[str]:
    """The orders among ``acknowledged`` (answered as confirmed) that the store does not hold:
    with ``sync`` durability there must be none, whatever the faults did."""
    from marketplace.store.orders import stored_statuses

    stored = await stored_statuses(engine, acknowledged)
    return sorted(set(acknowledged) - set(stored))


async def settle_orders(
    pending: Callable[[], Awaitable[int]], timeout_s: float = SETTLE_TIMEOUT_S
) -> tuple[float | None, int]:
    """Wait for ``pending()`` (orders not yet terminal) to reach 0: (seconds it took, or None
    when ``timeout_s`` passed first; the count left)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    left = await pending()
    while left:
        if loop.time() - start >= timeout_s:
            return None, left
        await asyncio.sleep(0.5)
        left = await pending()
    return round(loop.time() - start, 3), 0
