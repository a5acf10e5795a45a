"""A run over time in one figure, for notebooks: throughput against the offered load above
latency, second by second (``results.timeline``), with marks for events such as a kill.

``plot_run(result, marks=[(12.0, "kill orders-0")])`` returns a pyplot figure (shown inline in
a notebook); ``kinds`` keeps some operation kinds only, ``axes`` draws on two given axes (to put
runs side by side). ``write_results`` writes the same series as CSV and PNG files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from marketplace.sim.loops import RunResult
from marketplace.sim.results import timeline

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_run(
    result: RunResult,
    *,
    marks: Iterable[tuple[float, str]] = (),
    kinds: Iterable[str] | None = None,
    title: str | None = None,
    axes: Sequence[Any] | None = None,
) -> Figure:
    """Operations per second, offered and completed (top), and latency by intended start (bottom,
    log scale: each operation a dot, the p50 and p99 of each second as lines).

    ``marks`` are ``(seconds, label)`` events drawn as dashed red lines.
    """
    import matplotlib.pyplot as plt

    wanted = set(kinds) if kinds is not None else None
    records = [r for r in result.records if wanted is None or r.kind in wanted]
    seconds = timeline(records, result.summary.elapsed)
    if axes is None:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    else:
        top, bottom = axes
        fig = top.figure
    xs = [s.second for s in seconds]
    top.bar(xs, [s.ok for s in seconds], width=1.0, align="edge", label="completed ok")
    if any(s.failed for s in seconds):
        top.bar(
            xs,
            [s.failed for s in seconds],
            width=1.0,
            align="edge",
            bottom=[s.ok for s in seconds],
            color="tab:red",
            label="failed",
        )
    top.step(xs, [s.offered for s in seconds], where="post", color="grey", label="offered")
    top.set_ylabel("operations/s")
    top.set_title(title or "Throughput and latency over the run")
    top.legend(loc="lower right", fontsize=8)

    dots = [(r.intended, r.latency * 1000) for r in records if r.latency is not None]
    bottom.scatter([t for t, _ in dots], [ms for _, ms in dots], s=3, alpha=0.25, label="one op")
    middle = [x + 0.5 for x in xs]
    bottom.plot(middle, [_nan(s.p50_ms) for s in seconds], color="black", label="p50")
    bottom.plot(middle, [_nan(s.p99_ms) for s in seconds], color="tab:orange", label="p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds into the run (latency by intended start)")
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


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
