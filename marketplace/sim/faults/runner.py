"""Running a fault schedule beside a load: each fault applied at its time, lifted after its
duration, and its target probed until it answers again.

Faults run concurrently (their windows may overlap). Whatever happens (the load ends early,
Ctrl-C), every applied fault is lifted before ``run_faults`` returns, so a stopped database or
broker is started again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from marketplace.sim.faults.injectors import FaultContext, Injector, injector_for
from marketplace.sim.faults.plan import Schedule, ScheduledFault
from marketplace.sim.faults.recovery import FaultWindow

log = logging.getLogger(__name__)
PROBE_EVERY_S = 0.25

Say = Callable[[str], None]


async def run_faults(
    schedule: Schedule,
    context: FaultContext,
    *,
    started: float,
    say: Say | None = None,
) -> list[FaultWindow]:
    """Apply ``schedule``'s faults, timed from ``started`` (a reading of the event loop's
    clock, the load's start, as the simulator's loops time their records), and return when
    each was applied, lifted and healed."""
    windows: list[FaultWindow] = []
    tasks = [
        asyncio.create_task(_one(scheduled, context, started, windows, say or _quiet))
        for scheduled in schedule.faults
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        # Cancelled tasks lift what they applied in their own finally blocks.
        await asyncio.gather(*tasks, return_exceptions=True)
    return sorted(windows, key=lambda w: (w.applied, w.id))


def _quiet(message: str) -> None:
    log.info("%s", message)


async def _one(
    scheduled: ScheduledFault,
    context: FaultContext,
    started: float,
    windows: list[FaultWindow],
    say: Say,
) -> None:
    loop = asyncio.get_running_loop()

    def now() -> float:
        return loop.time() - started

    await asyncio.sleep(max(0.0, scheduled.start - now()))
    injector: Injector = injector_for(scheduled, context)
    description = scheduled.describe()
    applied = now()
    say(f"{applied:6.1f} s  fault {scheduled.id}: {description}")
    error: str | None = None
    try:
        await injector.apply()
        if scheduled.duration:
            await asyncio.sleep(max(0.0, scheduled.start + scheduled.duration - now()))
    except Exception as exc:  # the fault could not be made: the run goes on, the row says why
        error = f"{type(exc).__name__}: {exc}"
        say(f"{now():6.1f} s  fault {scheduled.id}: could not be applied ({error})")
    finally:
        # A cancelled run still starts the database or broker it stopped: the lift runs to
        # its end before the cancellation goes on.
        lift = asyncio.ensure_future(_lift(injector, scheduled))
        try:
            await asyncio.shield(lift)
        except asyncio.CancelledError:
            await lift
            raise
    lifted = now()
    healed = await _heal(injector, scheduled.fault.heal_timeout, now)
    if healed is None:
        timeout = scheduled.fault.heal_timeout
        say(f"{now():6.1f} s  fault {scheduled.id}: target not answering after {timeout:g} s")
    else:
        say(f"{healed:6.1f} s  fault {scheduled.id}: lifted, target answers")
    windows.append(
        FaultWindow(
            id=scheduled.id,
            kind=scheduled.kind,
            description=description,
            applied=round(applied, 3),
            lifted=round(lifted, 3),
            healed=None if healed is None else round(healed, 3),
            error=error,
        )
    )


async def _lift(injector: Injector, scheduled: ScheduledFault) -> None:
    try:
        await injector.lift()
    except Exception:
        log.exception("lifting fault %s failed", scheduled.id)


async def _heal(injector: Injector, timeout_s: float, now: Callable[[], float]) -> float | None:
    deadline = now() + timeout_s
    while now() < deadline:
        try:
            if await injector.healthy():
                return now()
        except Exception as exc:
            log.debug("probe failed: %r", exc)
        await asyncio.sleep(PROBE_EVERY_S)
    return None
