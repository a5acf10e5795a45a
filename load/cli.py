"""``marketplace load``: run a load scenario headless, report, judge it against its SLOs.

A scenario (``load/scenarios/<name>.toml``, or a path to such a file) names the user classes and
their weights, a load shape with its parameters, and the SLOs: an error rate and per-endpoint
p95/p99 in ms (endpoint = Locust's ``METHOD /path/{param}`` name, or ``Aggregated``). The run:

1. Locust in a subprocess (the same interpreter: ``sys.executable -m locust``), headless, with a
   progress bar; its CSV files, HTML report and log land in the report folder
   (default ``.marketplace/reports/<scenario>-<timestamp>/``);
2. a summary table, PNG plots of throughput and latency percentiles over time;
3. the invariant audit ``GET /v1/admin/audit`` with the admin's token.

Exit 0 only when every SLO holds and the audit is clean; 1 names what failed; 2 when Locust
produced no statistics.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from load.shape_params import DEFAULTS

LOAD_DIR = Path(__file__).resolve().parent
SCENARIOS_DIR = LOAD_DIR / "scenarios"
LOCUSTFILE = LOAD_DIR / "locustfile.py"
REPORTS_DIR = Path(".marketplace") / "reports"  # under the working directory, like all state
PREFIX = "locust"  # CSV prefix: locust_stats.csv, locust_stats_history.csv, ...
USER_KINDS = ("browser", "buyer", "seller", "carrier", "flash_buyer")

console = Console()
if not console.is_terminal:  # piped (CI logs, files): room for the tables, not 80 columns
    console.width = max(console.width, 132)

app = typer.Typer(
    name="load",
    help="Run a load scenario with Locust and judge it against its SLOs.",
    add_completion=False,
)


# -- scenarios --------------------------------------------------------------------------------


@dataclass
class Slo:
    """One objective: ``endpoint`` ``metric`` (p95_ms, p99_ms or error_rate) at most ``limit``."""

    endpoint: str
    metric: str
    limit: float
    value: float | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None and self.value <= self.limit

    def describe(self) -> str:
        unit = "" if self.metric == "error_rate" else " ms"
        value = "no data" if self.value is None else f"{self.value:g}{unit}"
        return f"{self.endpoint} {self.metric.removesuffix('_ms')} {value} > {self.limit:g}{unit}"


@dataclass
class Scenario:
    name: str
    description: str
    shape: str
    shape_params: dict[str, Any]
    weights: dict[str, int]
    slos: list[Slo] = field(default_factory=list)
    flash_stock: int = 20

    @property
    def duration_s(self) -> float:
        defaults = DEFAULTS[self.shape]
        return float(self.shape_params.get("duration_s", defaults["duration_s"]))


def scenario_names() -> list[str]:
    """The scenarios shipped in ``load/scenarios``."""
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by name (``load/scenarios/<name>.toml``) or by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SCENARIOS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise typer.BadParameter(
            f"no scenario {name_or_path!r}; known: {', '.join(scenario_names())}",
            param_hint="--scenario",
        )
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    weights = {kind: int(data.get("users", {}).get(kind, 0)) for kind in USER_KINDS}
    unknown = set(data.get("users", {})) - set(USER_KINDS)
    if unknown or not any(weights.values()):
        raise typer.BadParameter(f"{path}: users must weigh some of {', '.join(USER_KINDS)}")
    slo_table = data.get("slo", {})
    slos = [Slo("Aggregated", "error_rate", float(slo_table.get("error_rate", 0.0)))]
    for endpoint, limits in slo_table.get("endpoints", {}).items():
        for metric in ("p95_ms", "p99_ms"):
            if metric in limits:
                slos.append(Slo(endpoint, metric, float(limits[metric])))
    shape = str(data.get("shape", "steady"))
    if shape not in DEFAULTS:
        known = ", ".join(DEFAULTS)
        raise typer.BadParameter(f"{path}: unknown shape {shape!r}; known: {known}")
    return Scenario(
        name=path.stem,
        description=str(data.get("description", "")),
        shape=shape,
        shape_params=dict(data.get("shape_params", {})),
        weights=weights,
        slos=slos,
        flash_stock=int(data.get("flash_stock", 20)),
    )


# -- reading Locust's CSV ---------------------------------------------------------------------


def _number(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw not in (None, "", "N/A") else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def read_stats(report: Path) -> list[dict[str, str]]:
    """Rows of ``locust_stats.csv`` (one per endpoint, then ``Aggregated``)."""
    path = report / f"{PREFIX}_stats.csv"
    with path.open(newline="", encoding="utf-8") as source:
        return list(csv.DictReader(source))


def endpoint_name(row: dict[str, str]) -> str:
    """``METHOD /path``: the user classes name requests so; a bare path gets its method."""
    kind, name = row.get("Type") or "", row["Name"]
    return name if not kind or name.startswith(f"{kind} ") else f"{kind} {name}"


def judge(slos: list[Slo], rows: list[dict[str, str]]) -> list[Slo]:
    """Fill each SLO's value from the statistics; returns the breached ones."""
    by_name = {endpoint_name(row): row for row in rows}
    for slo in slos:
        row = by_name.get(slo.endpoint)
        if row is None:
            slo.value = None
        elif slo.metric == "error_rate":
            requests = _number(row["Request Count"]) or 0
            slo.value = (_number(row["Failure Count"]) or 0) / requests if requests else None
        else:
            slo.value = _number(row["95%" if slo.metric == "p95_ms" else "99%"])
    return [slo for slo in slos if not slo.ok]


def summary_table(rows: list[dict[str, str]]) -> Table:
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
            f"{_number(row['Requests/s']) or 0:.1f}",
            *(
                f"{_number(row[key]) or 0:.0f}"
                for key in ("Median Response Time", "95%", "99%", "Max Response Time")
            ),
            style=style,
        )
    return table


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
        return [_number(row.get(key)) or float("nan") for row in rows]

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
        endpoints.sort(key=lambda row: _number(row["95%"]) or 0)
        names = [endpoint_name(row) for row in endpoints]
        figure, axis = plt.subplots(figsize=(9, 0.8 + 0.32 * len(names)))
        positions = list(range(len(names)))
        for key, offset in (("50%", -0.25), ("95%", 0.0), ("99%", 0.25)):
            values = [_number(row[key]) or 0 for row in endpoints]
            bars = [p + offset for p in positions]
            axis.barh(bars, values, 0.25, label=f"p{key.rstrip('%')}")
        axis.set_yticks(positions, names, fontsize=8)
        axis.set_xlabel("ms (whole run)")
        axis.set_title("Latency per endpoint")
        axis.legend(loc="lower right")
        written.append(save(figure, report / "endpoints.png"))
    return written


def _latest(report: Path) -> dict[str, str] | None:
    """The newest aggregated row of the history (for the progress line)."""
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


# -- the audit --------------------------------------------------------------------------------


def run_audit(host: str, email: str, password: str) -> dict[str, Any]:
    """``GET /v1/admin/audit`` with the admin's token; ``{"ok": False, "error": ...}`` if not."""
    import httpx

    try:
        with httpx.Client(base_url=host, timeout=120) as http:
            login = http.post("/v1/auth/token", data={"username": email, "password": password})
            if login.status_code != 200:
                return {"ok": False, "error": f"admin login: {login.status_code} {login.text}"}
            token = login.json()["access_token"]
            reply = http.get("/v1/admin/audit", headers={"Authorization": f"Bearer {token}"})
            if reply.status_code != 200:
                return {"ok": False, "error": f"audit: {reply.status_code} {reply.text}"}
            return dict(reply.json())
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"audit: {exc!r}"}


# -- the command ------------------------------------------------------------------------------


def locust_environment(
    scenario: Scenario,
    host: str,
    report: Path,
    manifest: str | None,
    flash_product: str | None,
    admin: tuple[str, str],
) -> dict[str, str]:
    env = dict(os.environ)
    root = str(LOAD_DIR.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["LOAD_SHAPE"] = scenario.shape
    env["LOAD_SHAPE_PARAMS"] = json.dumps(scenario.shape_params)
    for kind, value in scenario.weights.items():
        env[f"LOAD_WEIGHT_{kind.upper()}"] = str(value)
    env["LOAD_ORDER_LOG"] = str(report / "orders.jsonl")
    env["LOAD_FLASH_STOCK"] = str(scenario.flash_stock)
    if manifest is not None:
        env["LOAD_MANIFEST"] = manifest
    if flash_product:
        env["LOAD_FLASH_PRODUCT"] = flash_product
    env["MARKETPLACE_ADMIN_EMAIL"], env["MARKETPLACE_ADMIN_PASSWORD"] = admin
    env.setdefault("MPLBACKEND", "Agg")
    return env


def check_host(host: str) -> None:
    """Fail early, in one line, when no marketplace answers at ``host``."""
    import httpx

    try:
        reply = httpx.get(f"{host}/v1/health", timeout=10)
    except httpx.HTTPError as exc:
        raise typer.BadParameter(
            f"no marketplace answers at {host} ({exc.__class__.__name__}); "
            "start one with `marketplace up` or pass --host",
            param_hint="--host",
        ) from None
    if reply.status_code != 200:
        raise typer.BadParameter(
            f"{host}/v1/health answered {reply.status_code}, not 200", param_hint="--host"
        )


def run_locust(
    scenario: Scenario,
    host: str,
    report: Path,
    env: dict[str, str],
    quiet: bool,
    processes: int = 1,
) -> int:
    """Locust headless in a subprocess, with a progress bar; its exit status.

    With ``processes`` > 1 Locust forks one master and that many workers on this machine.
    """
    duration = scenario.duration_s
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--csv",
        str(report / PREFIX),
        "--html",
        str(report / "report.html"),
        "--run-time",
        f"{math.ceil(duration) + 30}s",  # a safety net: the shape ends the run
        "--stop-timeout",
        "10",
        "--only-summary",
        *(["--processes", str(processes)] if processes > 1 else []),
        "--loglevel",
        "WARNING",
        "--logfile",
        str(report / "locust.log"),
    ]
    (report / "command.txt").write_text(" ".join(command) + "\n", encoding="utf-8")
    with (report / "locust.out").open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=console,
            disable=quiet,
            transient=False,
        )
        started = time.monotonic()
        with progress:
            job = progress.add_task(scenario.name, total=duration, line="starting")
            while process.poll() is None:
                time.sleep(0.5)
                row = _latest(report)
                line = (
                    f"users {row['User Count']}  {_number(row['Requests/s']) or 0:.1f} req/s  "
                    f"failures {row['Total Failure Count']}"
                    if row
                    else "starting"
                )
                elapsed = time.monotonic() - started
                progress.update(job, completed=min(elapsed, duration), line=line)
            progress.update(job, completed=duration)
    return process.returncode


def load_command(
    scenario: Annotated[
        str, typer.Option("--scenario", "-s", help="A scenario name (load/scenarios) or a path.")
    ] = "smoke",
    host: Annotated[
        str, typer.Option(help="The marketplace's base URL.")
    ] = "http://127.0.0.1:8000",
    users: Annotated[
        int | None, typer.Option(min=1, help="Override the shape's (peak) users.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Override the run's duration in seconds.")
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report-dir", help="Default: .marketplace/reports/SCENARIO-TIMESTAMP/."),
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option(help="Seed manifest (default .marketplace/seed.json if any; 'none': no)."),
    ] = None,
    flash_product: Annotated[
        str | None, typer.Option(help="The scarce product of a flash sale (else one is listed).")
    ] = None,
    admin_email: Annotated[
        str | None, typer.Option(help="Default: MARKETPLACE_ADMIN_EMAIL.")
    ] = None,
    admin_password: Annotated[
        str | None, typer.Option(help="Default: MARKETPLACE_ADMIN_PASSWORD.")
    ] = None,
    processes: Annotated[
        int,
        typer.Option(min=1, help="Locust processes on this machine (a master and N workers)."),
    ] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run a load scenario with Locust (headless), report it and judge its SLOs and the audit."""
    from marketplace.config import Settings

    plan = load_scenario(scenario)
    if users is not None:
        plan.shape_params["users"] = users
    if duration is not None:
        plan.shape_params["duration_s"] = duration
    settings = Settings()
    admin = (
        admin_email or settings.admin_email,
        admin_password or settings.admin_password.get_secret_value(),
    )
    host = host.rstrip("/")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = report_dir or REPORTS_DIR / f"{plan.name}-{stamp}"
    report.mkdir(parents=True, exist_ok=True)
    console.print(
        f"[bold]{plan.name}[/]: {plan.description}\n"
        f"shape {plan.shape} {json.dumps(plan.shape_params)}, users "
        + ", ".join(f"{k} {v}" for k, v in plan.weights.items() if v)
        + f"\nhost {host}, report {report}",
        soft_wrap=True,
    )
    check_host(host)
    if plan.weights.get("flash_buyer") and not flash_product:
        from load.common import list_flash_product

        flash_product = list_flash_product(host, plan.flash_stock)
        console.print(f"flash sale: {flash_product} with {plan.flash_stock} units")
    env = locust_environment(plan, host, report, manifest, flash_product, admin)
    code = run_locust(plan, host, report, env, quiet, processes)
    if not (report / f"{PREFIX}_stats.csv").is_file():
        tail = (report / "locust.out").read_text(encoding="utf-8", errors="replace")[-3000:]
        console.print(f"[red]Locust failed (exit {code}) without statistics[/]\n{tail}")
        raise typer.Exit(2)

    rows = read_stats(report)
    console.print(summary_table(rows))
    plots = plot_history(report)
    breached = judge(plan.slos, rows)
    audit = run_audit(host, *admin)

    slo_table = Table(title="SLOs")
    for column in ("endpoint", "objective", "value", "limit", ""):
        slo_table.add_column(column)
    for slo in plan.slos:
        unit = "" if slo.metric == "error_rate" else " ms"
        value = "-" if slo.value is None else f"{slo.value:.4g}{unit}"
        mark = "[green]ok[/]" if slo.ok else "[red]BREACHED[/]"
        slo_table.add_row(slo.endpoint, slo.metric, value, f"{slo.limit:g}{unit}", mark)
    console.print(slo_table)

    failed_checks = [
        name for name, check in (audit.get("checks") or {}).items() if not check.get("ok")
    ]
    summary = {
        "scenario": plan.name,
        "host": host,
        "shape": plan.shape,
        "shape_params": plan.shape_params,
        "locust_exit_code": code,
        "requests": int(_number(rows[-1]["Request Count"]) or 0) if rows else 0,
        "failures": int(_number(rows[-1]["Failure Count"]) or 0) if rows else 0,
        "slos": [
            {"endpoint": s.endpoint, "metric": s.metric, "limit": s.limit, "value": s.value}
            | {"ok": s.ok}
            for s in plan.slos
        ],
        "breached": [s.describe() for s in breached],
        "audit": audit,
        "plots": [p.name for p in plots],
        "passed": not breached and bool(audit.get("ok")),
    }
    (report / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    for slo in breached:
        console.print(f"[red]SLO breached:[/] {slo.describe()}", soft_wrap=True)
    if audit.get("ok"):
        console.print("[green]audit ok[/]")
    else:
        detail = audit.get("error") or ", ".join(failed_checks)
        console.print(f"[red]audit failed:[/] {detail}", soft_wrap=True)
    console.print(f"report: {report}", soft_wrap=True)
    if not summary["passed"]:
        raise typer.Exit(1)
    console.print("[green]PASS[/]")


app.command("load")(load_command)

if __name__ == "__main__":
    app()
