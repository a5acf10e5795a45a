"""What a run leaves behind: Locust's CSV read back, the summary table, plots, the SLO verdict
(``judge``), ``summary.json`` and the lines printed at the end.

Every file lands in the run's report folder (default ``.marketplace/reports/<scenario>-<time>/``):
Locust's ``locust_*.csv``, ``report.html``, ``locust.log`` and ``locust.out``, the command it ran
(``command.txt``), every checkout's answer (``orders.jsonl``), ``throughput.png``,
``latency.png``, ``endpoints.png`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from load.scenario import Scenario, Slo

REPORTS_DIR = Path(".marketplace") / "reports"  # under the working directory, like all state
PREFIX = "locust"  # CSV prefix: locust_stats.csv, locust_stats_history.csv, ...

console = Console()
if not console.is_terminal:  # piped (CI logs, files): room for the tables, not 80 columns
    console.width = max(console.width, 132)


# -- Locust's CSV -------------------------------------------------------------------------------


def number(raw: str | None) -> float | None:
    """A CSV cell as a number; None when empty, ``N/A`` or not a number."""
    try:
        value = float(raw) if raw not in (None, "", "N/A") else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def stats_csv(report: Path) -> Path:
    """``locust_stats.csv``: there only when Locust produced statistics."""
    return report / f"{PREFIX}_stats.csv"


def read_stats(report: Path) -> list[dict[str, str]]:
    """Rows of ``locust_stats.csv`` (one per endpoint, then ``Aggregated``)."""
    with stats_csv(report).open(newline="", encoding="utf-8") as source:
        return list(csv.DictReader(source))


def latest_aggregated(report: Path) -> dict[str, str] | None:
    """The newest aggregated row of the stats history (for the progress line)."""
    path = report / f"{PREFIX}_stats_history.csv"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header = next(csv.reader([lines[0]]))
    for line in reversed(lines[1:]):
        row = dict(zip(header, next(csv.reader([line])), strict=False))
        if row.get("Name") == "Aggregated":
            return row
    return None


def endpoint_name(row: dict[str, str]) -> str:
    """``METHOD /path``: the user classes name requests so; a bare path gets its method."""
    kind, name = row.get("Type") or "", row["Name"]
    return name if not kind or name.startswith(f"{kind} ") else f"{kind} {name}"


# -- the SLO judge ------------------------------------------------------------------------------


def judge(slos: list[Slo], rows: list[dict[str, str]]) -> list[Slo]:
    """Fill each SLO's value from the statistics; returns the breached ones."""
    by_name = {endpoint_name(row): row for row in rows}
    for slo in slos:
        row = by_name.get(slo.endpoint)
        if row is None:
            slo.value = None
        elif slo.metric == "error_rate":
            requests = number(row["Request Count"]) or 0
            slo.value = (number(row["Failure Count"]) or 0) / requests if requests else None
        else:
            slo.value = number(row["95%" if slo.metric == "p95_ms" else "99%"])
    return [slo for slo in slos if not slo.ok]


# -- printed ------------------------------------------------------------------------------------


def print_plan(plan: Scenario, host: str, report: Path) -> None:
    """The run about to start: scenario, shape, users, host and report folder."""
    console.print(
        f"[bold]{plan.name}[/]: {plan.description}\n"
        f"shape {plan.shape} {json.dumps(plan.shape_params)}, users "
        + ", ".join(f"{k} {v}" for k, v in plan.weights.items() if v)
        + f"\nhost {host}, report {report}",
        soft_wrap=True,
    )


def summary_table(rows: list[dict[str, str]]) -> Table:
    """Requests, failures, throughput and latencies per endpoint, then all together."""
    table = Table(title="Requests", show_lines=False)
    for column in ("endpoint", "requests", "failures", "req/s", "median", "p95", "p99", "max"):
        if column == "endpoint":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    for row in rows:
        style = "bold" if row["Name"] == "Aggregated" else None
        table.add_row(
            endpoint_name(row),
            row["Request Count"],
            row["Failure Count"],
            f"{number(row['Requests/s']) or 0:.1f}",
            *(
                f"{number(row[key]) or 0:.0f}"
                for key in ("Median Response Time", "95%", "99%", "Max Response Time")
            ),
            style=style,
        )
    return table


def slo_table(slos: list[Slo]) -> Table:
    """Each SLO judged: its value, its limit, ok or BREACHED."""
    table = Table(title="SLOs")
    for column in ("endpoint", "objective", "value", "limit", ""):
        table.add_column(column)
    for slo in slos:
        unit = "" if slo.metric == "error_rate" else " ms"
        value = "-" if slo.value is None else f"{slo.value:.4g}{unit}"
        mark = "[green]ok[/]" if slo.ok else "[red]BREACHED[/]"
        table.add_row(slo.endpoint, slo.metric, value, f"{slo.limit:g}{unit}", mark)
    return table


def print_verdict(report: Path, breached: list[Slo], audit: dict[str, Any]) -> None:
    """Each breached SLO, the audit's outcome and where the report is."""
    for slo in breached:
        console.print(f"[red]SLO breached:[/] {slo.describe()}", soft_wrap=True)
    if audit.get("ok"):
        console.print("[green]audit ok[/]")
    else:
        failed_checks = [
            name for name, check in (audit.get("checks") or {}).items() if not check.get("ok")
        ]
        detail = audit.get("error") or ", ".join(failed_checks)
        console.print(f"[red]audit failed:[/] {detail}", soft_wrap=True)
    console.print(f"report: {report}", soft_wrap=True)


def print_locust_failure(report: Path, code: int) -> None:
    """Locust ended without statistics: its exit status and the end of its output."""
    tail = (report / "locust.out").read_text(encoding="utf-8", errors="replace")[-3000:]
    console.print(f"[red]Locust failed (exit {code}) without statistics[/]\n{tail}")


# -- written ------------------------------------------------------------------------------------


def write_summary(
    report: Path,
    plan: Scenario,
    host: str,
    locust_exit_code: int,
    rows: list[dict[str, str]],
    breached: list[Slo],
    audit: dict[str, Any],
    plots: list[Path],
    faults: dict[str, Any] | None = None,
    anomalies: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``summary.json``: the run, its SLOs judged, the audit and the verdict (``passed``).

    ``faults`` (a fault plan's outcome: ``{"plan", "faults", "orders_terminal_after_s",
    "passed"}``) joins the summary and the verdict; ``anomalies`` (``load/anomalies.py``; None
    when ``/metrics`` could not be read) joins the summary only: they are what a mode allows,
    not failures."""
    summary = {
        "scenario": plan.name,
        "host": host,
        "shape": plan.shape,
        "shape_params": plan.shape_params,
        "locust_exit_code": locust_exit_code,
        "requests": int(number(rows[-1]["Request Count"]) or 0) if rows else 0,
        "failures": int(number(rows[-1]["Failure Count"]) or 0) if rows else 0,
        "slos": [
            {"endpoint": s.endpoint, "metric": s.metric, "limit": s.limit, "value": s.value}
            | {"ok": s.ok}
            for s in plan.slos
        ],
        "breached": [s.describe() for s in breached],
        "audit": audit,
        "plots": [p.name for p in plots],
        "anomalies": anomalies,
        "passed": not breached
        and bool(audit.get("ok"))
        and (faults is None or bool(faults.get("passed"))),
    }
    if faults is not None:
        summary["faults"] = faults
    (report / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def history_csv(report: Path) -> Path:
    """Locust's per-second history of the run."""
    return report / f"{PREFIX}_stats_history.csv"


def plot_history(report: Path) -> list[Path]:
    """``throughput.png`` and ``latency.png`` over time (the stats history's aggregated rows)
    and ``endpoints.png``, each endpoint's p50/p95/p99 over the whole run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = report / f"{PREFIX}_stats_history.csv"
    with path.open(newline="", encoding="utf-8") as source:
        rows = [row for row in csv.DictReader(source) if row["Name"] == "Aggregated"]
    if not rows:
        return []
    start = float(rows[0]["Timestamp"])
    t = [float(row["Timestamp"]) - start for row in rows]

    def series(key: str) -> list[float]:
        return [number(row.get(key)) or float("nan") for row in rows]

    def save(figure: Any, path: Path) -> Path:
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path

    written = []
    figure, axis = plt.subplots(figsize=(9, 4.5))
    axis.plot(t, series("Requests/s"), label="requests/s")
    axis.plot(t, series("Failures/s"), label="failures/s", color="tab:red")
    users = axis.twinx()
    users.plot(t, series("User Count"), label="users", color="tab:grey", linestyle="--")
    users.set_ylabel("users")
    axis.set_xlabel("seconds")
    axis.set_ylabel("per second")
    axis.set_title("Throughput")
    axis.legend(loc="upper left")
    written.append(save(figure, report / "throughput.png"))

    figure, axis = plt.subplots(figsize=(9, 4.5))
    for key in ("50%", "95%", "99%"):
        axis.plot(t, series(key), label=f"p{key.rstrip('%')}")
    axis.set_xlabel("seconds")
    axis.set_ylabel("ms")
    axis.set_title("Latency percentiles, all endpoints (Locust's rolling 10 s window)")
    axis.legend(loc="upper left")
    written.append(save(figure, report / "latency.png"))

    endpoints = [row for row in read_stats(report) if row["Name"] != "Aggregated"]
    if endpoints:
        endpoints.sort(key=lambda row: number(row["95%"]) or 0)
        names = [endpoint_name(row) for row in endpoints]
        figure, axis = plt.subplots(figsize=(9, 0.8 + 0.32 * len(names)))
        positions = list(range(len(names)))
        for key, offset in (("50%", -0.25), ("95%", 0.0), ("99%", 0.25)):
            values = [number(row[key]) or 0 for row in endpoints]
            bars = [p + offset for p in positions]
            axis.barh(bars, values, 0.25, label=f"p{key.rstrip('%')}")
        axis.set_yticks(positions, names, fontsize=8)
        axis.set_xlabel("ms (whole run)")
        axis.set_title("Latency per endpoint")
        axis.legend(loc="lower right")
        written.append(save(figure, report / "endpoints.png"))
    return written
