"""A fault plan beside a Locust run (``marketplace load --faults PLAN``).

Locust runs in a subprocess; the plan runs here, in a thread with its own event loop, joined to
the marketplace the load is aimed at (the one ``marketplace up`` runs here, or the actors that
MARKETPLACE_RAY_ADDRESS and MARKETPLACE_NAMESPACE name). Afterwards, each fault's recovery is
measured on Locust's per-second history (``locust_stats_history.csv``), as the simulator measures
it on its own records, and every order must end within 30 s.
"""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketplace.sim.loops import OK, OpRecord, Outcome

if TYPE_CHECKING:
    from marketplace.sim.faults.plan import FaultPlan, Schedule
    from marketplace.sim.faults.recovery import FaultWindow, Recovery

READY_TIMEOUT_S = 300.0


@dataclass
class LoadFaults:
    """``plan`` for a ``duration_s`` run, drawn from ``seed``, applied from ``go()`` on."""

    plan: FaultPlan
    duration_s: float
    seed: int
    say: Callable[[str], None] = print
    schedule: Schedule | None = None
    windows: list[FaultWindow] = field(default_factory=list)
    settled_after_s: float | None = None
    started_at: float | None = None  # wall clock of go(), to line the faults up with Locust's
    error: BaseException | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _go: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Join the marketplace and draw the schedule; raises what went wrong (a plan with
        nothing to hit there is a ``PlanError``)."""
        self._thread = threading.Thread(target=self._run, name="fault-plan", daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            raise TimeoutError("joining the marketplace for the fault plan took too long")
        if self.error is not None:
            raise self.error

    def go(self) -> None:
        """The load starts now: time the faults from here."""
        self.started_at = time.time()
        self._go.set()

    def join(self) -> None:
        """Wait for every fault to be lifted and healed and the orders to end."""
        self._go.set()  # a load that never started still lets the thread finish
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from marketplace.cli.session import marketplace_session
        from marketplace.sim.faults.runner import run_faults
        from marketplace.sim.faults.under_load import plan_for_run, settle_orders
        from marketplace.sim.simulation import SimConfig

        async with marketplace_session() as session:
            client = session.client
            config = SimConfig(duration=self.duration_s, seed=self.seed)
            self.schedule, context = plan_for_run(
                self.plan, config, session.settings, client.directory, "http"
            )
            self._ready.set()
            await asyncio.to_thread(self._go.wait)
            started = asyncio.get_running_loop().time()
            self.windows = await run_faults(self.schedule, context, started=started, say=self.say)

            async def pending() -> int:
                return (await client.order_stats()).get("status_pending", 0)

            self.settled_after_s, _ = await settle_orders(pending)

    def recoveries(self, history: Path) -> list[Recovery]:
        """Each fault's recovery, measured on Locust's per-second history."""
        from marketplace.sim.faults.recovery import recoveries

        assert self.started_at is not None
        records, elapsed = records_from_history(history, self.started_at)
        return recoveries(records, self.windows, elapsed)


def records_from_history(path: Path, t0: float) -> tuple[list[OpRecord], float]:
    """Locust's aggregated per-second history as operation records (seconds from ``t0``):
    each request that second as one record, ok or ``http_error``; and the last second."""
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") == "Aggregated":
                rows.append(row)
    records: list[OpRecord] = []
    done = failed = 0
    last = 0.0
    for row in rows:
        at = float(row["Timestamp"]) - t0
        total, failures = _int(row["Total Request Count"]), _int(row["Total Failure Count"])
        new_ok = max(0, (total - failures) - (done - failed))
        new_failed = max(0, failures - failed)
        done, failed, last = total, failures, max(last, at)
        records += [_record(at, OK) for _ in range(new_ok)]
        records += [_record(at, Outcome.failure("http_error")) for _ in range(new_failed)]
    return records, last


def _record(at: float, outcome: Outcome) -> OpRecord:
    return OpRecord("request", at, at, at, 0.0, outcome)


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0
