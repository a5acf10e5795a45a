"""``marketplace experiment``: run an experiment file (or a built-in) and list the built-ins."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from marketplace.cli.output import CliError, console, err_console, reported
from marketplace.sim.experiments.points import Point, expand, format_value
from marketplace.sim.experiments.report import best_point, knees, mean_table
from marketplace.sim.experiments.run import (
    DEFAULT_OUT,
    ExperimentObserver,
    ExperimentResult,
    resolve,
    run_experiment,
)
from marketplace.sim.experiments.spec import ExperimentSpec, SpecError, builtin_names, load_spec

if TYPE_CHECKING:
    from marketplace.sim.loops import OpRecord

experiment_app = typer.Typer(
    help="Sweep runtime and workload knobs over fresh marketplaces; write CSV, plots, a report.",
    no_args_is_help=True,
)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"


class ProgressLines(ExperimentObserver):
    """A live line for the run under way (its phase, operations done, elapsed) and a printed
    line for each run that ends."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.prefix = ""
        self.phase = ""
        self.ops = 0
        self.shown_at = 0.0
        self.began = 0.0

    def _show(self) -> None:
        if self.task is not None:
            ops = f", {self.ops} ops" if self.phase == "running" else ""
            self.progress.update(self.task, description=f"{self.prefix}: {self.phase}{ops}")

    def point_started(self, point: Point, number: int, total: int) -> None:
        self.prefix = f"[{number}/{total}] {point.label()} (repeat {point.repeat})"
        self.ops = 0
        self.began = time.monotonic()
        self.task = self.progress.add_task(self.prefix, total=None)

    def point_phase(self, point: Point, phase: str) -> None:
        self.phase = phase
        self._show()

    def point_record(self, point: Point, record: OpRecord) -> None:
        self.ops += 1
        now = time.monotonic()
        if now - self.shown_at > 0.25:  # every operation would redraw hundreds of times a second
            self.shown_at = now
            self._show()

    def point_finished(self, point: Point, number: int, total: int, row: Mapping[str, Any]) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        audit = "[green]audit ok[/]" if row.get("audit_ok") else "[bold red]AUDIT FAILED[/]"
        self.progress.console.print(
            f"{self.prefix}: {row['achieved_rate']:.1f}/s of {row['offered_rate']:.1f}/s offered, "
            f"p50 {_ms(row.get('p50_ms'))}, p99 {_ms(row.get('p99_ms'))}, "
            f"failed {row['failed']}, dropped {row['dropped']}, {audit} "
            f"[dim]({time.monotonic() - self.began:.1f} s)[/]",
            highlight=False,
        )


def run_with_progress(spec: ExperimentSpec, *, out: Path, quick: bool = False) -> ExperimentResult:
    """``run_experiment`` under a live line for the run under way and a line per finished run."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        return run_experiment(spec, quick=quick, out=out, observer=ProgressLines(progress))


@experiment_app.command("run")
def run_command(
    experiment: Annotated[
        str, typer.Argument(help="An experiment file (TOML) or a built-in's name.")
    ],
    quick: Annotated[
        bool, typer.Option("--quick", help="Shrink every point (the file's [quick]), for CI.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write results.csv, the plots and report.md."),
    ] = None,
) -> None:
    """Run an experiment: each point on a fresh marketplace (new SQLite file, own actors),
    seeded, simulated, audited. Writes results.csv, one PNG per plot and report.md.

    Starts a local Ray for the run, or joins MARKETPLACE_RAY_ADDRESS / RAY_ADDRESS. Exits 1
    when any run's invariant audit fails (after writing the results), 2 for a bad file.
    """
    with reported():
        try:
            spec = load_spec(experiment)
            resolved = resolve(spec, quick=quick)
        except SpecError as exc:
            raise CliError(str(exc), code=2) from None
        target = out if out is not None else DEFAULT_OUT / resolved.name
        runs = len(expand(resolved))
        console.print(
            f"Experiment [bold]{resolved.name}[/]{' (quick)' if quick else ''}: {runs} run(s) "
            f"from {resolved.source}, results to {target}",
            highlight=False,
            soft_wrap=True,
        )
        began = time.monotonic()
        result = run_with_progress(spec, quick=quick, out=target)
        _print_result(result, time.monotonic() - began)
    if not result.ok:
        for run, violations in result.audit_failures.items():
            err_console.print(Text.assemble(("audit failed: ", "bold red"), run))
            for violation in violations:
                err_console.print(Text(f"  {violation}"), soft_wrap=True, highlight=False)
        raise typer.Exit(1)


def _print_result(result: ExperimentResult, took: float) -> None:
    spec = result.spec
    table = mean_table(result.rows, spec.knobs)
    view = Table(title=f"{spec.name}: mean over repeats", title_justify="left")
    for header in ("point", *spec.knobs, "runs", "achieved/s", "p50", "p99", "checkout p99"):
        view.add_column(header, justify="right")
    view.add_column("audit")
    for row in table:
        view.add_row(
            str(row["point"]),
            *(format_value(row.get(k)) for k in spec.knobs),
            str(row["runs"]),
            f"{row['achieved_rate']:.1f}",
            _ms(row.get("p50_ms")),
            _ms(row.get("p99_ms")),
            _ms(row.get("checkout_p99_ms")),
            "[green]ok[/]" if row.get("audit_ok") else "[bold red]FAIL[/]",
        )
    console.print(view)
    best = best_point(table, spec.report)
    if best is not None:
        knobs = ", ".join(f"{k}={format_value(best.get(k))}" for k in spec.knobs) or "-"
        console.print(f"Best point: {best['point']} ({knobs}) by {spec.report.metric}")
    for knee in knees(table, spec):
        where = "" if knee.series == "all" else f" ({knee.series})"
        found = f"{spec.report.x} = {format_value(knee.x)}" if knee.x is not None else knee.note
        console.print(f"Knee of {spec.report.knee_metric}{where}: {found}", highlight=False)
    console.print("Wrote:", highlight=False)
    paths = result.paths
    for path in (paths.csv, paths.timeline, *paths.plots, paths.report):
        if path is None:
            continue
        console.print(f"  {path}", highlight=False, soft_wrap=True)
    console.print(f"Took {took:.1f} s.")


@experiment_app.command("list")
def list_command() -> None:
    """List the built-in experiments (run one by name, or give a TOML file's path)."""
    with reported():
        view = Table(title="Built-in experiments", title_justify="left")
        view.add_column("name", style="bold cyan")
        view.add_column("sweeps")
        view.add_column("runs", justify="right")
        view.add_column("quick", justify="right")
        view.add_column("via")
        view.add_column("what")
        for name in builtin_names():
            try:
                spec = load_spec(name)
            except SpecError as exc:
                raise CliError(str(exc)) from None
            sweeps = ", ".join(
                f"{k} {'/'.join(format_value(v) for v in values)}"
                for k, values in spec.sweep.items()
            )
            first_line = " ".join(spec.description.split()).split(". ")[0]
            view.add_row(
                name,
                sweeps,
                str(len(expand(spec))),
                str(len(expand(spec.quickened()))),
                spec.via,
                first_line,
            )
        console.print(view)
