"""``marketplace load``: run a load scenario headless, report, judge it against its SLOs.

The run (``load/README.md``):

1. the scenario (``load/scenario.py``) with the command line's overrides;
2. Locust in a subprocess, headless, with a progress bar (``load/runner.py``); its CSV files,
   HTML report and log land in the report folder
   (default ``.marketplace/reports/<scenario>-<timestamp>/``);
3. a summary table, PNG plots of throughput and latency percentiles over time, the SLOs judged
   (``load/report.py``);
4. the invariant audit ``GET /v1/admin/audit`` with the admin's token.

Exit 0 only when every SLO holds and the audit is clean; 1 names what failed; 2 when Locust
produced no statistics. ``python -m load.cli`` runs the same command on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from load.report import (
    REPORTS_DIR,
    console,
    judge,
    plot_history,
    print_locust_failure,
    print_plan,
    print_verdict,
    read_stats,
    slo_table,
    stats_csv,
    summary_table,
    write_summary,
)
from load.runner import check_host, locust_environment, run_audit, run_locust
from load.scenario import load_scenario

app = typer.Typer(
    name="load",
    help="Run a load scenario with Locust and judge it against its SLOs.",
    add_completion=False,
)


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
    print_plan(plan, host, report)
    check_host(host)
    if plan.weights.get("flash_buyer") and not flash_product:
        # Imported here: building the market reads the seed manifest, which a run without a
        # flash sale does not need in this process.
        from load.flash_sale import list_flash_product

        flash_product = list_flash_product(host, plan.flash_stock)
        console.print(f"flash sale: {flash_product} with {plan.flash_stock} units")
    env = locust_environment(plan, host, report, manifest, flash_product, admin)
    code = run_locust(plan, host, report, env, quiet, processes)
    if not stats_csv(report).is_file():
        print_locust_failure(report, code)
        raise typer.Exit(2)

    rows = read_stats(report)
    console.print(summary_table(rows))
    plots = plot_history(report)
    breached = judge(plan.slos, rows)
    audit = run_audit(host, *admin)
    console.print(slo_table(plan.slos))
    summary = write_summary(report, plan, host, code, rows, breached, audit, plots)
    print_verdict(report, breached, audit)
    if not summary["passed"]:
        raise typer.Exit(1)
    console.print("[green]PASS[/]")


app.command("load")(load_command)

if __name__ == "__main__":
    app()
