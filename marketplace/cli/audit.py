"""``marketplace audit``: check the invariants over the live marketplace and its store."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from marketplace.cli.output import console, err_console, reported
from marketplace.cli.session import marketplace_session

if TYPE_CHECKING:
    from marketplace.audit import AuditReport


def audit(
    max_pending_age: Annotated[
        float,
        typer.Option(
            min=0.0, help="Seconds a pending order may be in flight before it counts as stuck."
        ),
    ] = 30.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
) -> None:
    """Check the invariants (I1 no oversell, I2 exactly-once charge, I3 orders settle,
    I4 events recorded, I6 dashboards) over the live marketplace and its store.

    Joins the marketplace that `marketplace up` runs in this directory, or else starts one for
    the length of the command. Exits 1 when any check fails.
    """
    # Ray prints the cluster's own warnings (a raylet's, say) on this process's stdout from a
    # thread of its own; with --json, stdout carries the report alone.
    with (
        reported(),
        contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext(),
    ):
        report = asyncio.run(_audit(max_pending_age, quiet=as_json))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_audit(report)
    if not report.ok:
        raise typer.Exit(1)


async def _audit(max_pending_age: float, *, quiet: bool) -> AuditReport:
    async with marketplace_session() as session:
        (err_console if quiet else console).print(
            session.description, soft_wrap=True, highlight=False
        )
        return await session.client.audit(max_pending_age_s=max_pending_age)


def print_audit(report: AuditReport, shown: int = 3) -> None:
    table = Table(title="Invariant audit", title_justify="left")
    table.add_column("check", style="bold")
    table.add_column("ok")
    table.add_column("rows checked", justify="right")
    table.add_column("first violations")
    for name, check in report.checks.items():
        if check.skipped:
            verdict = "[yellow]skipped[/]"
        elif check.ok:
            verdict = "[green]ok[/]"
        else:
            verdict = "[bold red]FAIL[/]"
        violations = list(check.violations[:shown])
        if len(check.violations) > shown:
            violations.append(f"... {len(check.violations) - shown} more listed")
        detail = check.skipped or "\n".join(violations) or "-"
        table.add_row(name, verdict, str(check.checked), Text(detail))
    console.print(table)
    if report.in_flight_orders:
        console.print(f"{report.in_flight_orders} order(s) still in flight (not counted as stuck).")
    console.print(
        "[bold green]All invariants hold.[/]" if report.ok else "[bold red]Invariants broken.[/]"
    )
