"""What each fault did to a run: errors while it lasted, and how long until the run recovered.

Pure arithmetic over the simulator's operation records (``marketplace.sim.loops.OpRecord``) and
the times a fault was applied and lifted (``FaultLog``):

- **baseline**: operations completed ok per second over the 10 s before the fault (or since the
  run's start, when that is shorter than 10 s; none under 2 s);
- **recovered at**: the first second, from when the fault was lifted and its target answered
  again (a killed actor is "lifted" the moment it is killed, but the run cannot have recovered
  before it is back), that starts a 3-second window with throughput within 90% of the baseline
  and no errors ending in it. A 3-second
  window rather than one second: at tens of operations per second a single second's count
  is too noisy to compare with 90%;
- **errors**: failed operations that ended (or were dropped) between the fault's start and
  its recovery (or the run's end), by reason. Faults whose windows overlap share the errors
  of the overlap: each counts them. A market's "no" (out of stock, a declined card,
  a conflict) is not an error; the system failing (a 5xx, a timeout, a saga cancelled because a
  peer did not answer, an order left pending, an exception, a dropped operation) is;
- **pending**: checkouts among those errors that ended ``pending`` (the saga outlived the
  request; the run's end waits for them to finish and says how).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from marketplace.sim.loops import OpRecord

BASELINE_S = 10.0
WINDOW_S = 3
THRESHOLD = 0.9

MARKET_SAYS_NO = frozenset(
    {
        "out_of_stock",
        "payment_declined",
        "product_unavailable",
        "insufficient_stock",
        "conflict",
        "not_found",
        "forbidden",
        "invalid_input",
        "idempotency_key_reused",
    }
)
"""Failure reasons that are the market refusing, not the system failing."""


FAULT_COLUMNS = (
    "faults_applied",
    "faults_unhealed",
    "max_recovery_s",
    "mean_recovery_s",
    "unrecovered_faults",
    "fault_errors",
    "orders_settled_s",
    "orders_lost",
)
"""The columns a run under a fault plan adds to an experiment's rows (``fault_metrics``)."""


def is_error(record: OpRecord) -> bool:
    """Whether ``record`` failed because the system did (not because the market said no)."""
    reason = record.outcome.reason
    return not record.outcome.ok and reason not in MARKET_SAYS_NO


@dataclass(frozen=True)
class FaultWindow:
    """When one fault was applied and lifted (seconds from the run's start), when its target
    answered again (None: not within its heal timeout), and why it could not be applied (None:
    it was)."""

    id: str
    kind: str
    description: str
    applied: float
    lifted: float
    healed: float | None
    error: str | None = None


@dataclass(frozen=True)
class Recovery:
    """One fault's effect on the run."""

    window: FaultWindow
    baseline_ok_per_s: float | None
    recovered_at: float | None
    errors: dict[str, int] = field(default_factory=dict)
    pending: int = 0

    @property
    def time_to_recover(self) -> float | None:
        """Seconds from the fault's start until the run had recovered (None: it never did
        within the run, or there was no baseline to recover to)."""
        if self.recovered_at is None:
            return None
        return round(self.recovered_at - self.window.applied, 3)

    def row(self) -> dict[str, object]:
        """A flat row for ``faults.csv`` and ``summary.json``."""
        w = self.window
        return {
            "id": w.id,
            "kind": w.kind,
            "fault": w.description,
            "applied_s": round(w.applied, 3),
            "lifted_s": round(w.lifted, 3),
            "healed_s": None if w.healed is None else round(w.healed, 3),
            "baseline_ok_per_s": (
                None if self.baseline_ok_per_s is None else round(self.baseline_ok_per_s, 2)
            ),
            "recovered_s": self.recovered_at,
            "time_to_recover_s": self.time_to_recover,
            "errors": sum(self.errors.values()),
            "error_reasons": dict(self.errors),
            "pending": self.pending,
            "error": w.error,
        }


def recoveries(
    records: Sequence[OpRecord], windows: Sequence[FaultWindow], elapsed: float
) -> list[Recovery]:
    """Each fault's ``Recovery`` in a run of ``elapsed`` seconds."""
    ok_ends = sorted(r.ended for r in records if r.outcome.ok and r.ended is not None)
    errors = [(_end(r), r) for r in records if is_error(r)]
    return [_recovery(window, ok_ends, errors, elapsed) for window in windows]


def _end(record: OpRecord) -> float:
    return record.ended if record.ended is not None else record.intended


def _count(sorted_times: Sequence[float], start: float, stop: float) -> int:
    from bisect import bisect_left

    return bisect_left(sorted_times, stop) - bisect_left(sorted_times, start)


def _recovery(
    window: FaultWindow,
    ok_ends: Sequence[float],
    errors: Sequence[tuple[float, OpRecord]],
    elapsed: float,
) -> Recovery:
    start = window.applied
    span = min(BASELINE_S, start)
    baseline = _count(ok_ends, start - span, start) / span if span >= 2 else None
    error_ends = sorted(end for end, _ in errors)
    recovered: float | None = None
    if baseline is not None:
        moment = max(window.lifted, window.healed or window.lifted)
        while moment + WINDOW_S <= elapsed + 1e-9:
            ok = _count(ok_ends, moment, moment + WINDOW_S) / WINDOW_S
            if ok >= THRESHOLD * baseline and not _count(error_ends, moment, moment + WINDOW_S):
                recovered = round(moment, 3)
                break
            moment += 1.0
    until = recovered if recovered is not None else elapsed + 1e-9
    during = [r for end, r in errors if start <= end < until]
    reasons = Counter(f"{r.kind}:{r.outcome.reason}" for r in during)
    pending = sum(1 for r in during if r.outcome.reason == "pending")
    return Recovery(
        window=window,
        baseline_ok_per_s=baseline,
        recovered_at=recovered,
        errors=dict(reasons.most_common()),
        pending=pending,
    )
