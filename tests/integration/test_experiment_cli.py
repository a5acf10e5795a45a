"""``marketplace experiment run scaling --quick``, for real, in a subprocess on the session's Ray:
it writes results.csv (one row per run), the PNGs and report.md, and exits 0."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.sim.experiments.spec import METRICS
from tests.integration.test_cli import cli_env

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT_S = 600  # two fresh runtimes on a loaded two-CPU machine


def test_quick_resilience_writes_csv_png_and_report(tmp_path: Path, ray_address: str) -> None:
    # The built-in that sweeps fault plans: no faults, then actor kills (notebook 05 sweeps
    # actor counts through the same API).
    env = cli_env()
    env.update(
        MARKETPLACE_RAY_ADDRESS=ray_address,  # join the session's Ray: no second Ray start
        MARKETPLACE_ACTOR_NUM_CPUS="0.01",
    )
    out = tmp_path / "tmp"
    command = ["experiment", "run", "resilience", "--quick", "--out", str(out)]
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
    assert [(row["point"], row["repeat"], row["faults"]) for row in rows] == [
        ("1", "1", "none"),
        ("2", "1", "kills"),
    ], shown
    assert set(METRICS) <= set(rows[0]), set(METRICS) - set(rows[0])
    for row in rows:
        assert row["audit_ok"] == "True", row
        assert int(row["ops"]) > 0 and int(row["ok"]) > 0, row
        assert float(row["achieved_rate"]) > 0, row
        assert float(row["offered_rate"]) > 0, row
        assert row["p99_ms"] != "", row
    # The quick run's 8 s take the plan's first kill (at 5 s); the run without faults has none.
    assert rows[0]["faults_applied"] == "" and rows[0]["max_recovery_s"] == "", rows[0]
    assert rows[1]["faults_applied"] == "1" and rows[1]["faults_unhealed"] == "0", rows[1]
    assert rows[1]["orders_settled_s"] != "" and rows[1]["orders_lost"] == "0", rows[1]

    with (out / "timeline.csv").open() as handle:
        seconds = list(csv.DictReader(handle))
    assert {row["point"] for row in seconds} == {"1", "2"}
    assert sum(float(row["achieved"]) for row in seconds) > 0

    for name in ("recovery.png", "latency.png", "throughput-over-time.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text()
    assert report.startswith("# Experiment `resilience` (quick)"), report
    assert "| point | faults | runs |" in report
    assert "## Best point" in report and "## Knee" in report
    assert "Every run's invariant audit passed." in report
    assert "![" in report and "(recovery.png)" in report

    assert "[1/2] faults=none" in result.stdout and "[2/2] faults=kills" in result.stdout, shown
    assert str(out / "report.md") in result.stdout, shown


HTTP_EXPERIMENT = """
name = "tiny-http"
description = "A short run through a gateway deployed for it, up to two replicas allowed."
via = "http"

[settings]
checkout_rate_per_minute = 100000
login_rate_per_minute = 100000
login_rate_per_address_per_minute = 100000
registration_rate_per_address_per_minute = 100000
actor_num_cpus = 0.01
gateway_num_cpus = 0.05
auth_num_cpus = 0.05

[workload]
preset = "om"
rate = 15
duration = 4
sellers = 2
products = 20
buyers = 8

[sweep]
gateway_max_replicas = [2]

[[plot]]
kind = "timeline"
name = "replicas"
y = ["replicas", "offered"]
"""


def test_an_http_experiment_deploys_a_gateway_for_its_run_and_counts_its_replicas(
    tmp_path: Path,
) -> None:
    # Its own Ray (no RAY_ADDRESS): Serve is one per cluster, and the e2e suite's gateway may
    # still be deployed on the session's.
    spec = tmp_path / "tiny-http.toml"
    spec.write_text(HTTP_EXPERIMENT)
    out = tmp_path / "out"
    command = ["experiment", "run", str(spec), "--out", str(out)]
    # The run removes its gateway application before Ray stops, and Serve keeps each replica
    # draining for RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S first: the runner sets 2 s
    # (gateway.prepare_ingress; cli_env drops the session's RAY_SERVE_*), where Serve's default
    # 30 s made the removal take 33 s instead of 6 s here.
    env = cli_env()
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
    assert [row["gateway_max_replicas"] for row in rows] == ["2"], shown
    for row in rows:
        assert row["audit_ok"] == "True", row
        assert int(row["ok"]) > 0 and "http_5xx" not in row["failures"], row
        assert int(row["max_replicas_seen"]) >= 1, row
    with (out / "timeline.csv").open() as handle:
        seconds = list(csv.DictReader(handle))
    counted = [int(row["replicas"]) for row in seconds if row["replicas"]]
    assert counted and min(counted) >= 1, seconds
    assert (out / "replicas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
