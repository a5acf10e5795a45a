"""Running a scenario: the host checked, Locust headless in a subprocess with a progress bar,
then the invariant audit.

Locust runs in a subprocess (the same interpreter: ``sys.executable -m locust``) because it
gevent-patches the process that imports it, which would break this process's own HTTP calls
(the health check and the audit). The scenario reaches Locust through the environment
(``load/environment.py``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from load.report import PREFIX, console, latest_aggregated, number
from load.scenario import Scenario

LOAD_DIR = Path(__file__).resolve().parent
LOCUSTFILE = LOAD_DIR / "locustfile.py"


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


def locust_environment(
    scenario: Scenario,
    host: str,
    report: Path,
    manifest: str | None,
    flash_product: str | None,
    admin: tuple[str, str],
) -> dict[str, str]:
    """This process's environment plus the scenario, as the Locust process reads it."""
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
                row = latest_aggregated(report)
                line = (
                    f"users {row['User Count']}  {number(row['Requests/s']) or 0:.1f} req/s  "
                    f"failures {row['Total Failure Count']}"
                    if row
                    else "starting"
                )
                elapsed = time.monotonic() - started
                progress.update(job, completed=min(elapsed, duration), line=line)
            progress.update(job, completed=duration)
    return process.returncode


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
