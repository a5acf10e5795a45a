"""``marketplace experiment run scaling --quick``, for real, in a subprocess on the session's Ray:
it writes results.csv (one row per run), the PNGs and report.md, and exits 0."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.sim.experiments.spec import METRICS

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT_S = 600  # two fresh runtimes on a loaded two-CPU machine


def test_quick_scaling_writes_csv_png_and_report(tmp_path: Path, ray_address: str) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MARKETPLACE_", "RAY_SERVE_")) and key != "RAY_ADDRESS"
    }
    env.update(
        MARKETPLACE_RAY_ADDRESS=ray_address,  # join the session's Ray: no second Ray start
        MARKETPLACE_ACTOR_NUM_CPUS="0.01",
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
    )
    out = tmp_path / "tmp"
    command = ["experiment", "run", "scaling", "--quick", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "marketplace.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    shown = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert result.returncode == 0, shown

    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["point"], row["repeat"], row["actors"]) for row in rows] == [
        ("1", "1", "1"),
        ("2", "1", "2"),
    ], shown
    assert set(METRICS) <= set(rows[0]), set(METRICS) - set(rows[0])
    for row in rows:
        assert row["audit_ok"] == "True", row
        assert int(row["ops"]) > 0 and int(row["ok"]) > 0, row
        assert float(row["achieved_rate"]) > 0, row
        assert float(row["offered_rate"]) > 0, row
        assert row["p99_ms"] != "", row

    with (out / "timeline.csv").open() as handle:
        seconds = list(csv.DictReader(handle))
    assert {row["point"] for row in seconds} == {"1", "2"}
    assert sum(float(row["achieved"]) for row in seconds) > 0

    for name in ("throughput.png", "checkout.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text()
    assert report.startswith("# Experiment `scaling` (quick)"), report
    assert "| point | actors | runs |" in report
    assert "## Best point" in report and "## Knee" in report
    assert "Every run's invariant audit passed." in report
    assert "![" in report and "(throughput.png)" in report

    assert "[1/2] actors=1" in result.stdout and "[2/2] actors=2" in result.stdout, shown
    assert str(out / "report.md") in result.stdout, shown
