"""The results folder: the per-second timeline shows a stall in both offers and completions,
and write_results writes every file it promises."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from marketplace.sim.loops import OK, OpRecord, Outcome, RunResult, summarize
from marketplace.sim.results import CSV_FILES, PLOTS, anomalies, timeline, write_results

pytestmark = pytest.mark.unit


def done(kind: str, intended: float, latency: float, outcome: Outcome = OK) -> OpRecord:
    return OpRecord(kind, intended, intended, intended + latency, latency, outcome)


def stalled_run() -> RunResult:
    """Ten operations a second for 4 s; those intended in second 1 all end at 2.5 s."""
    records = []
    for i in range(40):
        intended = i / 10
        latency = 2.5 - intended if 1 <= intended < 2 else 0.01
        outcome = OK if i % 10 else Outcome.failure("out_of_stock")
        records.append(done("checkout" if i % 2 else "browse", intended, latency, outcome))
    records.append(OpRecord("browse", 3.95, None, None, None, Outcome.failure("dropped")))
    return RunResult(records, summarize(records, 4.0, 10.0))


def test_the_timeline_shows_a_stall_in_latency_and_in_completions() -> None:
    seconds = timeline(stalled_run().records, 4.0)
    assert [s.second for s in seconds] == [0, 1, 2, 3]
    assert [s.offered for s in seconds] == [10, 10, 10, 11]
    assert seconds[3].dropped == 1
    # Nothing intended in second 1 ends before 2.5 s: no completions in second 1 ...
    assert seconds[1].ok + seconds[1].failed == 0
    # ... and second 2 completes its own ten and the ten that waited.
    assert seconds[2].ok + seconds[2].failed == 20
    # Latency is charged to the second the operations were meant to start in.
    assert seconds[1].p99_ms is not None and seconds[1].p99_ms > 1000
    assert seconds[0].p99_ms is not None and seconds[0].p99_ms < 100
    assert seconds[2].checkout_p99_ms is not None and seconds[2].checkout_p99_ms < 100


def test_anomalies_count_failures_by_kind_and_reason() -> None:
    counts = anomalies(stalled_run().records)
    assert counts == {"browse:out_of_stock": 4, "browse:dropped": 1}


def test_write_results_writes_every_file(tmp_path: Path) -> None:
    run = stalled_run()
    body = write_results(
        tmp_path / "out",
        run,
        config={"preset": "om", "rate": 10},
        saga_counters={"confirmed": 18},
        audit={"ok": True},
        title="test",
    )
    folder = tmp_path / "out"
    for name in (*CSV_FILES, *PLOTS, "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (folder / name).read_bytes().startswith(b"\x89PNG"), name
    with (folder / "ops.csv").open() as rows:
        ops = list(csv.DictReader(rows))
    assert len(ops) == len(run.records)
    assert ops[-1]["reason"] == "dropped" and ops[-1]["latency_ms"] == ""
    with (folder / "kinds.csv").open() as rows:
        kinds = {row["kind"]: row for row in csv.DictReader(rows)}
    assert set(kinds) == {"browse", "checkout"}
    assert int(kinds["browse"]["dropped"]) == 1
    stored = json.loads((folder / "summary.json").read_text())
    assert stored == json.loads(json.dumps(body, default=str))
    assert stored["total"] == 41 and stored["dropped"] == 1
    assert stored["saga_counters"] == {"confirmed": 18}
    assert stored["audit"] == {"ok": True}
