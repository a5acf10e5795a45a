"""A run over time: its records in bins (offered and completed operations per second, latency
percentiles), and a figure of both, for notebooks and reports.

Operations are binned by when they were *meant* to start for the offered rate and the latency (what
a user arriving then saw), and by when they *ended* for the throughput. ``plot_run`` draws
throughput over offered load above latency, with vertical marks for events (a kill, a rate step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketplace.sim.loops import OpRecord, RunResult, percentile

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True, slots=True)
class Bin:
    """One slice of a run: ``[start, start + width)`` seconds from its start."""

    start: float
    width: float
    offered: float  # operations meant to start in the bin, per second
    completed: float  # operations that ended ok in the bin, per second
    failed: float  # operations that ended failed (or were dropped) in the bin, per second
    p50: float | None  # latency (s) of the operations meant to start in the bin
    p99: float | None


def timeline(
    records: Sequence[OpRecord], bin_s: float = 1.0, *, kinds: Iterable[str] | None = None
) -> list[Bin]:
    """``records`` (of ``kinds``, default all) in bins of ``bin_s`` seconds."""
    if bin_s <= 0:
        raise ValueError("bin_s must be > 0")
    wanted = set(kinds) if kinds is not None else None
    chosen = [r for r in records if wanted is None or r.kind in wanted]
    if not chosen:
        return []
    last = max(max(r.intended, r.ended or 0.0) for r in chosen)
    count = int(last // bin_s) + 1
    offered = [0] * count
    completed = [0] * count
    failed = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    for r in chosen:
        start_bin = int(r.intended // bin_s)
        offered[start_bin] += 1
        if r.latency is not None:
            latencies[start_bin].append(r.latency)
        end_bin = int((r.ended if r.ended is not None else r.intended) // bin_s)
        if r.outcome.ok:
            completed[end_bin] += 1
        else:
            failed[end_bin] += 1
    return [
        Bin(
            start=i * bin_s,
            width=bin_s,
            offered=offered[i] / bin_s,
            completed=completed[i] / bin_s,
            failed=failed[i] / bin_s,
            p50=percentile(latencies[i], 50),
            p99=percentile(latencies[i], 99),
        )
        for i in range(count)
    ]


def plot_run(
    result: RunResult,
    *,
    bin_s: float = 1.0,
    marks: Iterable[tuple[float, str]] = (),
    kinds: Iterable[str] | None = None,
    title: str | None = None,
    axes: Sequence[Any] | None = None,
) -> Figure:
    """Throughput against offered load (top) and latency (bottom, log scale) over the run.

    ``marks`` are ``(seconds, label)`` events drawn as dashed red lines; ``kinds`` limits the
    plot to some operation kinds (e.g. ``["checkout"]``); ``axes`` draws on two given axes.
    """
    import matplotlib.pyplot as plt

    kinds = list(kinds) if kinds is not None else None
    bins = timeline(result.records, bin_s, kinds=kinds)
    if axes is None:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    else:
        top, bottom = axes
        fig = top.figure
    starts = [b.start for b in bins]
    top.step(starts, [b.offered for b in bins], where="post", color="grey", label="offered")
    top.bar(starts, [b.completed for b in bins], width=bin_s, align="edge", label="completed ok")
    if any(b.failed for b in bins):
        top.bar(
            starts,
            [b.failed for b in bins],
            width=bin_s,
            align="edge",
            bottom=[b.completed for b in bins],
            color="tab:red",
            label="failed",
        )
    top.set_ylabel("operations/s")
    top.legend(loc="lower right", fontsize=8)
    top.set_title(title or "Throughput and latency over the run")

    shown = [
        (r.intended, r.latency * 1000)
        for r in result.records
        if r.latency is not None and (kinds is None or r.kind in kinds)
    ]
    bottom.scatter(
        [at for at, _ in shown],
        [ms for _, ms in shown],
        s=3,
        alpha=0.3,
        color="tab:blue",
        label="one operation",
    )
    middle = [b.start + b.width / 2 for b in bins]
    bottom.plot(middle, [_ms(b.p50) for b in bins], color="black", label="p50")
    bottom.plot(middle, [_ms(b.p99) for b in bins], color="tab:orange", label="p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the run started (latency by intended start)")
    bottom.legend(loc="upper right", fontsize=8)
    for at, label in marks:
        for axis in (top, bottom):
            axis.axvline(at, color="red", linestyle="--", linewidth=1)
        top.annotate(
            label,
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            color="red",
            ha="left",
            va="top",
            fontsize=8,
        )
    fig.tight_layout()
    return fig


def _ms(seconds: float | None) -> float:
    return math.nan if seconds is None else seconds * 1000
