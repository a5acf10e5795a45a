"""An experiment point's consistency columns (``marketplace.sim.experiments.consistency``):
reads and writes measured from the run's records, anomalies from its recorded history checked
against the point's own mode, and the report's section over them."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from marketplace.config import Settings
from marketplace.consistency import History, Kind
from marketplace.sim.experiments.consistency import CONSISTENCY_COLUMNS, consistency_columns
from marketplace.sim.experiments.report import write_report
from marketplace.sim.experiments.spec import METRICS, load_spec, parse_spec
from marketplace.sim.loops import OK, OpRecord, Outcome

pytestmark = pytest.mark.unit

PRODUCT = "prd_1"


def _history() -> History:
    """The seller writes version 2 (0.0 to 0.1); then a buyer reads 1 (stale), and the seller
    itself reads 1 (stale, and against its own write); then the buyer reads 2, then 1 again
    (back in time)."""
    ticks = itertools.count()
    history = History(clock=lambda: next(ticks) / 10)
    write = history.invoke("seller", Kind.WRITE, PRODUCT)
    history.complete(write, 2)
    for client, version in (("buyer", 1), ("seller", 1), ("buyer", 2), ("buyer", 1)):
        read = history.invoke(client, Kind.READ, PRODUCT)
        history.complete(read, version)
    return history


def _records() -> list[OpRecord]:
    def record(kind: str, latency: float | None, outcome: Outcome = OK) -> OpRecord:
        ended = None if latency is None else latency
        return OpRecord(kind, 0.0, 0.0 if ended is not None else None, ended, latency, outcome)

    return [
        record("update_price", 0.010),
        record("update_product", 0.030),
        record("browse", 0.002),
        record("browse", 0.004),
        record("browse", 0.006, Outcome.failure("not_found")),
        record("browse", None, Outcome.failure("dropped")),
        record("checkout", 0.500),
    ]


def test_a_strong_point_that_read_stale_broke_its_mode() -> None:
    settings = Settings(catalog_consistency="strong")
    columns = consistency_columns(_records(), 2.0, _history(), settings)
    assert set(columns) == set(CONSISTENCY_COLUMNS)
    # Two completed reads ok (the refused one counts in the latency, not the reads).
    assert (columns["reads"], columns["read_rate"], columns["writes"]) == (2, 1.0, 2)
    assert columns["read_p99_ms"] == pytest.approx(6.0, abs=0.1)
    assert columns["write_p50_ms"] == pytest.approx(10.0, abs=0.1)
    # Reads of 1 after 2 was acknowledged (or read): the buyer's two and the seller's.
    assert columns["stale_reads"] == 3
    assert columns["stale_read_rate"] == pytest.approx(3 / 4)
    # The seller missed its own write; the buyer went back from 2 to 1.
    assert columns["session_violations"] == 2
    assert columns["mode_violations"] == 5 and columns["consistency_ok"] is False


def test_the_same_history_keeps_eventual_but_not_session() -> None:
    eventual = consistency_columns(
        _records(), 2.0, _history(), Settings(catalog_consistency="eventual")
    )
    session = consistency_columns(
        _records(), 2.0, _history(), Settings(catalog_consistency="session")
    )
    # Stale reads are counted in every mode, as information where the mode allows them.
    assert eventual["stale_reads"] == session["stale_reads"] == 3
    # Convergence is not judged (the load stops with the schedule): eventual holds.
    assert eventual["mode_violations"] == 0 and eventual["consistency_ok"] is True
    assert session["mode_violations"] == 2 and session["consistency_ok"] is False


def test_a_run_without_product_operations_has_empty_columns() -> None:
    columns = consistency_columns([], 1.0, History(), Settings())
    assert columns["reads"] == columns["writes"] == columns["stale_reads"] == 0
    assert columns["read_p99_ms"] is None and columns["stale_read_rate"] is None
    assert columns["consistency_ok"] is True


def test_the_columns_are_metrics_that_plots_may_name() -> None:
    assert set(CONSISTENCY_COLUMNS) <= set(METRICS)
    spec = load_spec("consistency")
    assert spec.workload["preset"] == "prices"
    assert {p.series for p in spec.plots} == {"catalog_consistency"}
    assert {y for p in spec.plots for y in p.y} <= set(METRICS)


def _row(point: int, mode: str, stale: int, broken: int) -> dict[str, Any]:
    return {
        "point": point,
        "repeat": 1,
        "catalog_consistency": mode,
        "achieved_rate": 10.0,
        "audit_ok": True,
        "reads": 100,
        "read_rate": 50.0,
        "read_p99_ms": 8.0,
        "writes": 10,
        "write_p50_ms": 5.0,
        "write_p99_ms": 9.0,
        "stale_reads": stale,
        "stale_read_rate": stale / 100,
        "session_violations": 0,
        "mode_violations": broken,
        "consistency_ok": broken == 0,
        "failures": "-",
    }


def test_the_report_puts_the_modes_side_by_side_and_names_a_broken_one(tmp_path: Path) -> None:
    spec = parse_spec("[sweep]\ncatalog_consistency = ['strong', 'eventual']", "c.toml")
    rows = [_row(1, "strong", 2, 2), _row(2, "eventual", 15, 0)]
    report = write_report(spec, rows, tmp_path).report.read_text()
    assert "## Consistency" in report
    assert "| 1 | strong | 100 | 50.0 | 8 | 5 | 9 | 2.0 | 0 | **FAIL** |" in report
    assert "| 2 | eventual | 100 | 50.0 | 8 | 5 | 9 | 15.0 | 0 | ok |" in report
    assert "**1 point(s) broke their mode**" in report
    quiet = [dict(r, reads=0, writes=0) for r in rows]
    assert "## Consistency" not in write_report(spec, quiet, tmp_path).report.read_text()
