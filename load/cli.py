"""``marketplace load``: run a load scenario headless, report, judge it against its SLOs.

The run (``load/README.md``):

1. the scenario (``load/scenario.py``) with the command line's overrides;
2. Locust in a subprocess, headless, with a progress bar (``load/runner.py``); its CSV files,
   HTML report and log land in the report folder
   (default ``.marketplace/reports/<scenario>-<timestamp>/``);
3. a summary table, PNG plots of throughput and latency percentiles over time, the SLOs judged
   (``load/report.py``);
4. the invariant audit ``GET /v1/admin/audit`` with the admin's token;
5. the consistency anomalies the run caused, from ``GET /metrics`` before and after
   (``load/anomalies.py``).

Exit 0 only when every SLO holds and the audit is clean; 1 names what failed; 2 when Locust
produced no statistics. ``python -m load.cli`` runs the same command on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from load.anomalies import SETTLE_S, anomalies, anomaly_table, read_metrics
from load.report import (
    REPORTS_DIR,
    console,
    history_csv,
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

if TYPE_CHECKING:
    from load.faults import LoadFaults

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
    faults: Annotated[
        str | None,
        typer.Option(
            help="A fault plan (a TOML file or a built-in: `marketplace faults list`) to run "
            "beside the load, on the marketplace `marketplace up` runs here."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="The fault plan's seed (its own seed wins).")] = 7,
) -> None:
    """Run a load scenario with Locust (headless), report it and judge its SLOs and the audit.

    With `--faults PLAN` the plan's faults happen during the load, on the marketplace that
    `marketplace up` runs here (or the actors MARKETPLACE_RAY_ADDRESS and MARKETPLACE_NAMESPACE
    name); the report then gains each fault's time to recover and errors (`faults.csv`), and
    the run passes only if every fault was applied and healed and every order ended within
    30 s of the plan.
    """
    from marketplace.config import Settings
    from marketplace.local_secrets import with_local_secrets

    plan = load_scenario(scenario)
    if users is not None:
        plan.shape_params["users"] = users
    if duration is not None:
        plan.shape_params["duration_s"] = duration
    host = host.rstrip("/")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = report_dir or REPORTS_DIR / f"{plan.name}-{stamp}"
    report.mkdir(parents=True, exist_ok=True)
    print_plan(plan, host, report)
    check_host(host)
    settings, _ = with_local_secrets(Settings(), create=False)
    configured = settings.admin_credentials()
    admin_password = admin_password or (configured[1] if configured else None)
    if admin_password is None:
        raise typer.BadParameter(
            "no admin password: pass --admin-password, set MARKETPLACE_ADMIN_PASSWORD, or run "
            "from the directory where `marketplace up` keeps .marketplace/secrets.json",
            param_hint="--admin-password",
        )
    admin = (admin_email or settings.admin_email, admin_password)
    if plan.weights.get("flash_buyer") and not flash_product:
        # Imported here: building the market reads the seed manifest, which a run without a
        # flash sale does not need in this process.
        from load.flash_sale import list_flash_product

        flash_product = list_flash_product(host, plan.flash_stock)
        console.print(f"flash sale: {flash_product} with {plan.flash_stock} units")
    env = locust_environment(plan, host, report, manifest, flash_product, admin)
    metrics_before = read_metrics(host)
    beside = _start_faults(faults, plan.duration_s, seed) if faults else None
    if beside is not None:
        beside.go()
    try:
        code = run_locust(plan, host, report, env, quiet, processes)
    finally:
        if beside is not None:
            beside.join()
    if not stats_csv(report).is_file():
        print_locust_failure(report, code)
        raise typer.Exit(2)

    rows = read_stats(report)
    console.print(summary_table(rows))
    plots = plot_history(report)
    breached = judge(plan.slos, rows)
    audit = run_audit(host, *admin)
    console.print(slo_table(plan.slos))
    metrics_after = None
    if metrics_before is not None:
        console.print(f"waiting {SETTLE_S:.0f} s for the last figures to reach /metrics")
        metrics_after = read_metrics(host, wait_s=SETTLE_S)
    found = None
    if metrics_before is not None and metrics_after is not None:
        found = anomalies(metrics_before, metrics_after)
        console.print(anomaly_table(found))
    fault_outcome = _fault_outcome(beside, report) if beside is not None else None
    summary = write_summary(
        report, plan, host, code, rows, breached, audit, plots, fault_outcome, found
    )
    print_verdict(report, breached, audit)
    if not summary["passed"]:
        raise typer.Exit(1)
    console.print("[green]PASS[/]")


def _start_faults(name_or_path: str, duration_s: float, seed: int) -> LoadFaults:
    """Load the plan, join the marketplace and draw the schedule; exit 2 when it cannot run."""
    from load.faults import LoadFaults
    from marketplace.sim.faults.plan import PlanError, load_plan

    try:
        beside = LoadFaults(load_plan(name_or_path), duration_s, seed, say=console.print)
        beside.start()
    except PlanError as exc:
        console.print(f"[red]fault plan refused: {exc}[/red]")
        raise typer.Exit(2) from None
    except Exception as exc:
        console.print(f"[red]could not join the marketplace for the fault plan: {exc}[/red]")
        raise typer.Exit(2) from None
    assert beside.schedule is not None
    console.print(
        f"fault plan {beside.plan.name} (seed {beside.schedule.seed}): "
        + "; ".join(f"{f.start:g} s {f.describe()}" for f in beside.schedule.faults),
        highlight=False,
    )
    return beside


def _fault_outcome(beside: LoadFaults, report: Path) -> dict[str, Any]:
    """Each fault's recovery on Locust's history, printed and written to ``faults.csv``."""
    import csv
    import json

    rows = [r.row() for r in beside.recoveries(history_csv(report))]
    if rows:
        with (report / "faults.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**r, "error_reasons": json.dumps(r["error_reasons"])} for r in rows)
    for row in rows:
        recovered = row["time_to_recover_s"]
        console.print(
            f"fault {row['id']} {row['fault']}: healed at {row['healed_s']} s, "
            f"recovered in {'-' if recovered is None else f'{recovered} s'}, "
            f"{row['errors']} failed requests"
            + (f", error: {row['error']}" if row["error"] else ""),
            highlight=False,
        )
    settled = beside.settled_after_s
    healed = all(row["healed_s"] is not None and not row["error"] for row in rows)
    if settled is None:
        console.print("[red]orders still pending 30 s after the fault plan[/red]")
    assert beside.schedule is not None
    return {
        "plan": {"name": beside.plan.name, "seed": beside.schedule.seed},
        "faults": rows,
        "orders_terminal_after_s": settled,
        "passed": settled is not None and healed,
    }


app.command("load")(load_command)

if __name__ == "__main__":
    app()
