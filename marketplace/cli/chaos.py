"""``marketplace chaos``: a campaign of random fault plans, each against a short simulated load on
a fresh marketplace, and a table of how each went."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from marketplace.cli.experiment import run_with_progress
from marketplace.cli.output import CliError, console, reported
from marketplace.sim.presets import PRESETS

DEFAULT_OUT = Path("results", "chaos")
# The campaign's named loads, after the Locust scenarios of load/scenarios/ that they stand in for:
# a campaign runs many short loads, each on a fresh marketplace in process (no gateway, no
# Locust), so its load is the simulator's: a preset at a rate for a while.
SCENARIOS: dict[str, dict[str, Any]] = {
    "smoke": {"preset": "om", "rate": 30.0, "duration": 15.0},
    "steady": {"preset": "om", "rate": 60.0, "duration": 30.0},
    "flash_sale": {"preset": "flash", "rate": 60.0, "duration": 20.0},
}


def scenario_load(
    scenario: str, preset: str | None, rate: float | None, duration: float | None
) -> tuple[str, float, float]:
    """The preset, rate and duration of a named load, each overridden where given."""
    if scenario not in SCENARIOS:
        known = ", ".join(SCENARIOS)
        raise CliError(f"unknown scenario {scenario!r}; known: {known}", 2)
    named = SCENARIOS[scenario]
    return (
        preset if preset is not None else named["preset"],
        rate if rate is not None else named["rate"],
        duration if duration is not None else named["duration"],
    )


def chaos_command(
    plans: Annotated[int, typer.Option(min=1, help="How many random plans to run.")] = 10,
    seed: Annotated[
        int, typer.Option(help="Plan i is drawn from seed + i; the load's seed is this one.")
    ] = 1,
    scenario: Annotated[
        str,
        typer.Option(
            help="The load beside each plan: "
            + "; ".join(
                f"{name} ({v['preset']}, {v['rate']:g} ops/s, {v['duration']:g} s)"
                for name, v in SCENARIOS.items()
            )
            + ". --preset, --rate and --duration change one part of it."
        ),
    ] = "smoke",
    preset: Annotated[
        str | None, typer.Option(help=f"Workload preset: {', '.join(sorted(PRESETS))}.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=1.0, help="Operations per second (open loop).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=4.0, help="Seconds of load per plan.")
    ] = None,
    products: Annotated[int, typer.Option(min=1, help="Products in the market.")] = 60,
    buyers: Annotated[int, typer.Option(min=1, help="Buyers in the market.")] = 30,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default results/chaos/seed-<seed>).")
    ] = None,
) -> None:
    """Run N random fault plans, each beside the same seeded load on a fresh marketplace (a new
    SQLite file and its own actors, on one Ray), then wait for every order to end and audit.

    Plans draw from the fault kinds that have something to hit here (actor kills, the card
    network, lost or slow calls, SQLite's write lock; the relay and RabbitMQ when
    MARKETPLACE_AMQP_URL names a local broker; the catalog's read replicas and their
    replication when MARKETPLACE_CATALOG_REPLICAS is set). Each plan is written as TOML under
    `<out>/plans/`, so `marketplace simulate --faults FILE` replays it. The table gives each
    plan's faults, its slowest recovery, the errors while faults lasted, the orders' settling
    time and the audit; a plan that broke something (the audit, orders still pending 30 s
    after it, an order acknowledged as confirmed missing from the store, a target that never
    answered again) prints how to reproduce it. Exits 1 if any did.
    """
    with reported():
        from marketplace.sim.experiments.spec import SpecError, spec_from_mapping
        from marketplace.sim.faults.plan import PlanError
        from marketplace.sim.faults.random_plans import plan_toml, random_plan

        preset, rate, duration = scenario_load(scenario, preset, rate, duration)
        if preset not in PRESETS:
            raise CliError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}", 2)
        folder = out if out is not None else DEFAULT_OUT / f"seed-{seed}"
        kinds, broker, replicas = _available_kinds()
        plan_dir = folder / "plans"
        plan_dir.mkdir(parents=True, exist_ok=True)
        drawn = []
        for number in range(plans):
            plan = random_plan(seed + number, duration, kinds, broker=broker, replicas=replicas)
            path = plan_dir / f"{plan.name}.toml"
            path.write_text(plan_toml(plan), encoding="utf-8")
            drawn.append((plan, path))
        workload = {
            "preset": preset,
            "rate": rate,
            "duration": duration,
            "seed": seed,
            "products": products,
            "buyers": buyers,
        }
        try:
            spec = spec_from_mapping(
                {
                    "name": "chaos",
                    "description": f"{plans} random fault plans from seed {seed}.",
                    "workload": workload,
                    "sweep": {"faults": [str(path) for _, path in drawn]},
                    "report": {"x": "faults", "metric": "achieved_rate"},
                    "plot": [
                        {"name": "recovery", "x": "faults", "y": ["max_recovery_s"]},
                        {"kind": "timeline", "name": "throughput", "y": ["achieved", "failed"]},
                    ],
                },
                source="chaos campaign",
            )
        except (SpecError, PlanError) as exc:
            raise CliError(str(exc), code=2) from None
        console.print(
            f"Chaos campaign: {plans} plan(s) from seed {seed} over kinds {', '.join(kinds)}; "
            f"each beside {preset} at {rate:g} ops/s for {duration:g} s; results to {folder}",
            highlight=False,
            soft_wrap=True,
        )
        began = time.monotonic()
        result = run_with_progress(spec, out=folder)
        failed = _print_campaign(result.rows, drawn, workload)
        console.print(f"Took {time.monotonic() - began:.1f} s; report: {result.paths.report}")
    if failed:
        raise typer.Exit(1)


def _available_kinds() -> tuple[list[str], bool, bool]:
    """The fault kinds with something to hit in a campaign's marketplaces (each on a SQLite
    file, with the broker and the catalog replicas the environment configures), whether a
    broker runs and whether replicas do."""
    from actors.directory import Directory
    from marketplace.config import Settings
    from marketplace.sim.faults.injectors import FaultContext, check_targets
    from marketplace.sim.faults.plan import PlanError, parse_plan, schedule

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(database_url=f"sqlite:///{scratch}/probe.db")
    context = FaultContext(settings=settings, directory=Directory(settings), via="client")
    probes: dict[str, dict[str, Any]] = {
        "kill_actor": {"actor": "orders", "at": 1},
        "payments": {"at": 1, "duration": 1, "error_rate": 0.5},
        "calls": {"from": "orders", "to": "inventory", "at": 1, "duration": 1, "drop_rate": 0.1},
        "sqlite_lock": {"at": 1, "duration": 1},
        "rabbitmq": {"at": 1, "duration": 1},
    }
    kinds = []
    for kind, fields in probes.items():
        probe = parse_plan({"name": "probe", "fault": [{"kind": kind, **fields}]})
        try:
            check_targets(schedule(probe, 10, {}), context)
        except PlanError:
            continue
        kinds.append(kind)
    return kinds, "rabbitmq" in kinds, settings.catalog_replicas > 0


def _print_campaign(
    rows: list[dict[str, Any]], drawn: list[tuple[Any, Path]], workload: dict[str, Any]
) -> bool:
    """The campaign's table; True when a plan broke something (and how to reproduce it)."""
    from marketplace.sim.faults.plan import schedule

    table = Table(title="Chaos campaign", title_justify="left", show_lines=True)
    for column in ("plan", "faults", "slowest recovery", "errors", "orders ended", "audit"):
        table.add_column(column, justify="right" if column in ("errors",) else "left")
    broken = []
    by_path = {str(path): plan for plan, path in drawn}
    for row in rows:
        plan = by_path[str(row["faults"])]
        faults = schedule(plan, float(workload["duration"]), {}, seed=plan.seed or 0).faults
        listed = "\n".join(f"{f.start:g} s {f.describe()}" for f in faults)
        recovery = row.get("max_recovery_s")
        unrecovered = row.get("unrecovered_faults") or 0
        settled = row.get("orders_settled_s")
        unhealed = row.get("faults_unhealed") or 0
        lost = row.get("orders_lost") or 0
        ok = bool(row.get("audit_ok")) and settled is not None and not unhealed and not lost
        if not ok:
            broken.append(plan)
        table.add_row(
            f"{plan.name}",
            listed,
            ("-" if recovery is None else f"{recovery:.1f} s")
            + (f" ({unrecovered} never)" if unrecovered else ""),
            str(row.get("fault_errors", 0)),
            "[red]not within 30 s[/]" if settled is None else f"after {settled:.1f} s",
            "[green]ok[/]"
            if ok
            else "[bold red]BROKEN[/]"
            + (" (unhealed)" if unhealed else "")
            + (f" ({lost} acknowledged orders lost)" if lost else ""),
        )
    console.print(table)
    for plan in broken:
        path = next(p for pl, p in drawn if pl is plan)
        console.print(
            f"[bold red]{plan.name} broke something.[/] Reproduce with: marketplace simulate "
            f"--faults {path} --seed {workload['seed']} --preset {workload['preset']} "
            f"--rate {workload['rate']:g} --duration {workload['duration']:g} "
            f"--products {workload['products']} --buyers {workload['buyers']} "
            f"(or redraw it: marketplace chaos --plans 1 --seed {plan.seed}, whose load is "
            f"seeded {plan.seed})",
            highlight=False,
            soft_wrap=True,
        )
    return bool(broken)
