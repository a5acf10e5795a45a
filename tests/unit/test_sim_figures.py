"""The notebooks' run figure: two axes, the marks, a kinds filter."""

from __future__ import annotations

import matplotlib
import pytest

from marketplace.sim.figures import plot_run
from marketplace.sim.loops import OK, OpRecord, Outcome, RunResult, summarize

pytestmark = pytest.mark.unit

matplotlib.use("Agg")

RECORDS = [
    OpRecord("browse", 0.1, 0.1, 0.15, 0.05, OK),
    OpRecord("checkout", 0.5, 0.5, 1.5, 1.0, OK),
    OpRecord("checkout", 1.2, 1.2, 1.3, 0.1, Outcome.failure("out_of_stock")),
    OpRecord("browse", 1.5, None, None, None, Outcome.failure("dropped")),
]
RESULT = RunResult(RECORDS, summarize(RECORDS, 2.0, 2.0))


def test_draws_throughput_over_latency_with_marks() -> None:
    fig = plot_run(RESULT, marks=[(1.0, "kill orders-0")], title="run")
    top, bottom = fig.axes
    assert top.get_title() == "run"
    assert bottom.get_yscale() == "log"
    assert [t.get_text() for t in top.texts] == ["kill orders-0"]
    assert len(top.patches) == 4  # two seconds of ok bars, two of failed ones


def test_kinds_and_given_axes() -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2)
    drawn = plot_run(RESULT, kinds=["checkout"], axes=axes[:, 1])
    assert drawn is fig
    dots = axes[1, 1].collections[0].get_offsets()
    assert len(dots) == 2  # the two checkouts
    assert not axes[0, 0].patches
