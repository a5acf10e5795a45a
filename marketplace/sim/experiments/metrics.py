"""A point's row of metrics from its run's records: rates, counts, latency percentiles in
milliseconds, checkout figures, failure reasons and Little's law.

Little's law (L = lambda W) is checked over a steady window, ``LITTLE_WINDOW`` of the run's
duration (from 20% in, skipping the warm-up, to the end of the schedule, leaving out the drain):
``little_l`` is the mean number of operations in flight, the time-integral of the concurrency
over the window divided by its length, an operation being in flight from its intended start to
its end (latency counts from the intended start, so the wait counts too); ``little_lambda_w``
is the rate of operations ending in the window times their mean latency. The two agree when the
records are consistent and the window is long against the latency; they part when latency grows
during the run (the system is not in a steady state, as past the knee).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from marketplace.sim.loops import OpRecord, RunResult, percentile

LITTLE_WINDOW = (0.2, 1.0)
"""The steady window for Little's law, as fractions of the run's duration."""

CHECKOUT = "checkout"


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, rounded to the microsecond (None stays None)."""
    return None if seconds is None else round(seconds * 1000.0, 3)


def in_flight(records: Sequence[OpRecord], start: float, end: float) -> tuple[float, int]:
    """The mean and the most operations in flight over ``[start, end)``: the time-integral of
    the concurrency (each completed operation from its intended start to its end) over the
    window's length, and the peak, by a sweep over the starts and ends."""
    if end <= start:
        raise ValueError("the window must have end > start")
    area = 0.0
    events: list[tuple[float, int]] = []
    for record in records:
        if record.ended is None:
            continue
        area += max(0.0, min(record.ended, end) - max(record.intended, start))
        events.append((record.intended, 1))
        events.append((record.ended, -1))
    # Ends sort before starts at the same instant, so back-to-back operations do not overlap.
    events.sort(key=lambda event: (event[0], event[1]))
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return area / (end - start), peak


def littles_law(
    records: Sequence[OpRecord], duration: float, window: tuple[float, float] = LITTLE_WINDOW
) -> tuple[float | None, float | None]:
    """``(L, lambda * W)`` over the steady window of a run of ``duration`` seconds (see the
    module's docstring); ``(L, None)`` when no operation ended in the window."""
    start, end = window[0] * duration, window[1] * duration
    mean, _ = in_flight(records, start, end)
    ended = [r for r in records if r.ended is not None and start <= r.ended < end]
    if not ended:
        return mean, None
    rate = len(ended) / (end - start)
    latency = sum(r.latency or 0.0 for r in ended) / len(ended)
    return mean, rate * latency


def failure_reasons(records: Sequence[OpRecord]) -> Counter[str]:
    """Failed operations counted by ``kind:reason``. Dropped ones are left out: ``dropped``
    counts them, and under overload they would crowd out the failures worth reading."""
    return Counter(
        f"{r.kind}:{r.outcome.reason or 'failed'}"
        for r in records
        if not r.outcome.ok and r.started is not None
    )


def format_reasons(reasons: Counter[str], shown: int = 6) -> str:
    """The most common failure reasons as ``kind:reason=count`` (``-`` when none)."""
    parts = [f"{reason}={count}" for reason, count in reasons.most_common(shown)]
    if len(reasons) > shown:
        parts.append(f"+{len(reasons) - shown} more")
    return " ".join(parts) or "-"


def metrics(result: RunResult, duration: float) -> dict[str, Any]:
    """The metric columns of one run of ``duration`` seconds (latencies in ms; None where no
    operation of that sort completed)."""
    summary = result.summary
    records = result.records
    latencies = [r.latency for r in records if r.latency is not None]
    checkout = summary.kinds.get(CHECKOUT)
    little_l, little_lambda_w = littles_law(records, duration)
    _, peak = in_flight(records, 0.0, max(summary.elapsed, duration))
    return {
        "offered_rate": round(summary.offered_rate, 3),
        "achieved_rate": round(summary.achieved_rate, 3),
        "ops": summary.total,
        "ok": summary.ok,
        "failed": summary.failed,
        "dropped": summary.dropped,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "mean_ms": ms(sum(latencies) / len(latencies)) if latencies else None,
        "checkout_ok": checkout.ok if checkout else 0,
        "checkout_failed": checkout.failed if checkout else 0,
        "checkout_p50_ms": ms(checkout.p50) if checkout else None,
        "checkout_p99_ms": ms(checkout.p99) if checkout else None,
        "little_l": None if little_l is None else round(little_l, 4),
        "little_lambda_w": None if little_lambda_w is None else round(little_lambda_w, 4),
        "max_in_flight_seen": peak,
        "elapsed_s": round(summary.elapsed, 3),
        "failures": format_reasons(failure_reasons(records)),
    }


def timeline(
    records: Sequence[OpRecord], elapsed: float, step: float = 1.0
) -> list[dict[str, Any]]:
    """Per ``step`` seconds of a run lasting ``elapsed``: ``t`` (the step's start), ``offered``
    (intended starts per second), ``achieved`` (operations ending per second), ``failed``
    (failures ending in the step, drops at their intended start), ``p50_ms``/``p99_ms`` of the
    operations ending in it and ``in_flight`` (the mean concurrency over it)."""
    if step <= 0:
        raise ValueError("step must be > 0")
    steps = max(1, math.ceil(elapsed / step))
    starts = [0] * steps
    failed = [0] * steps
    latencies: list[list[float]] = [[] for _ in range(steps)]

    def at(t: float) -> int:
        return min(max(int(t // step), 0), steps - 1)

    for record in records:
        starts[at(record.intended)] += 1
        when = record.ended if record.ended is not None else record.intended
        if not record.outcome.ok:
            failed[at(when)] += 1
        if record.ended is not None and record.latency is not None:
            latencies[at(record.ended)].append(record.latency)
    series = []
    for i in range(steps):
        begin = i * step
        mean, _ = in_flight(records, begin, begin + step)
        series.append(
            {
                "t": round(begin, 3),
                "offered": starts[i] / step,
                "achieved": len(latencies[i]) / step,
                "failed": failed[i],
                "p50_ms": ms(percentile(latencies[i], 50)),
                "p99_ms": ms(percentile(latencies[i], 99)),
                "in_flight": round(mean, 3),
            }
        )
    return series


def row(
    index: int,
    repeat: int,
    knobs: Mapping[str, Any],
    measured: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A results row: ``point``, ``repeat``, the knobs, then the measured columns and ``extra``
    (audit verdict, saga counters, the point's wall time)."""
    return {"point": index, "repeat": repeat, **knobs, **measured, **extra}
