"""A simulation with a fault plan beside it, and the wait for its orders to end afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from marketplace.sim.faults.injectors import FaultContext
from marketplace.sim.faults.plan import Schedule
from marketplace.sim.faults.recovery import FaultWindow, Recovery, recoveries
from marketplace.sim.faults.runner import Say, run_faults
from marketplace.sim.loops import OpRecord, RunResult, Target
from marketplace.sim.market import SyntheticMarket
from marketplace.sim.simulation import SimConfig, simulate

SETTLE_TIMEOUT_S = 30.0
"""After the plan ends, every order must be terminal within this long (issue #21)."""


@dataclass(frozen=True)
class FaultedRun:
    """A simulation's result, with when each fault applied and what it did."""

    result: RunResult
    windows: list[FaultWindow]
    recoveries: list[Recovery]


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
    from the load's start. Faults scheduled past the load's end still happen, and the run
    returns once every fault is lifted and its target answers (or its heal timeout passed)."""
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
