"""The run timeline: records binned by intended start (offered, latency) and by end (throughput)."""

from __future__ import annotations

import matplotlib
import pytest

from marketplace.sim.loops import OK, OpRecord, Outcome, RunResult, summarize
from marketplace.sim.timeline import plot_run, timeline

pytestmark = pytest.mark.unit


def op(kind: str, intended: float, latency: float | None, ok: bool = True) -> OpRecord:
    ended = None if latency is None else intended + latency
    started = None if latency is None else intended
    outcome = OK if ok else Outcome.failure("dropped" if latency is None else "out_of_stock")
    return OpRecord(kind, intended, started, ended, latency, outcome)


RECORDS = [
    op("browse", 0.1, 0.05),
    op("checkout", 0.5, 1.0),  # meant in bin 0, ended in bin 1
    op("checkout", 1.2, 0.1, ok=False),
    op("browse", 1.5, None, ok=False),  # dropped: offered, no latency, failed where it was meant
]


def test_bins_offered_and_latency_by_intended_start_and_throughput_by_end() -> None:
    bins = timeline(RECORDS, 1.0)
    assert [b.start for b in bins] == [0.0, 1.0]
    assert [b.offered for b in bins] == [2.0, 2.0]
    assert [b.completed for b in bins] == [1.0, 1.0]
    assert [b.failed for b in bins] == [0.0, 2.0]
    assert bins[0].p50 == pytest.approx(0.05) and bins[0].p99 == pytest.approx(1.0)
    assert bins[1].p50 == pytest.approx(0.1)


def test_kinds_filter_and_bin_width() -> None:
    bins = timeline(RECORDS, 0.5, kinds=["checkout"])
    assert [b.offered for b in bins] == [0.0, 2.0, 2.0, 0.0]
    assert sum(b.completed for b in bins) * 0.5 == 1
    assert timeline([], 1.0) == []
    with pytest.raises(ValueError):
        timeline(RECORDS, 0)


def test_plot_run_draws_two_axes_with_marks() -> None:
    matplotlib.use("Agg")
    result = RunResult(RECORDS, summarize(RECORDS, 2.0, 2.0))
    fig = plot_run(result, marks=[(1.0, "kill")], title="t")
    top, bottom = fig.axes
    assert top.get_title() == "t"
    assert bottom.get_yscale() == "log"
