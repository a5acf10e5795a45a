"""``marketplace faults``: the fault kinds a plan may hold, the built-in plans, and a plan's
seeded schedule."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from marketplace.cli.output import CliError, console, reported
from marketplace.sim.faults.kinds import KINDS, FaultBase
from marketplace.sim.faults.plan import PlanError, builtin_plans, load_plan, schedule

faults_app = typer.Typer(
    help="Fault plans: seeded chaos for `marketplace simulate --faults PLAN`.",
    no_args_is_help=True,
)

_COMMON = set(FaultBase.model_fields)


@faults_app.command("list")
def list_command() -> None:
    """The kinds of fault a plan may hold, with their fields, and the built-in plans."""
    kinds = Table(title="Fault kinds", title_justify="left", show_lines=True)
    kinds.add_column("kind")
    kinds.add_column("what it does")
    kinds.add_column("fields")
    for name, model in KINDS.items():
        fields = []
        for field_name, field in model.model_fields.items():
            if field_name in _COMMON or field_name == "kind":
                continue
            shown = field.alias or field_name
            default = "" if field.is_required() else f" = {field.default!r}"
            fields.append(f"{shown}{default}")
        about = " ".join((model.__doc__ or "").replace("``", "").split())
        kinds.add_row(name, about, "\n".join(fields))
    console.print(kinds)
    console.print(
        "Every fault: at = seconds, or every = mean seconds (Poisson, from the seed) with "
        "window = [from, to]; duration = seconds it applies (kills are instant); "
        "heal_timeout = seconds to wait for its target to answer again (default 30; "
        "kill_node 240).",
        highlight=False,
        markup=False,
    )
    plans = Table(title="Built-in plans", title_justify="left")
    plans.add_column("name")
    plans.add_column("description")
    for name, path in sorted(builtin_plans().items()):
        plans.add_row(name, load_plan(path).description)
    console.print(plans)


@faults_app.command("show")
def show_command(
    plan: Annotated[str, typer.Argument(help="A plan file, or a built-in plan's name.")],
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of the run.")] = 30.0,
    seed: Annotated[int, typer.Option(help="The run's seed (a plan's own seed wins).")] = 7,
) -> None:
    """The faults a plan gives for one run: when, what, on which target (default counts of
    each actor kind)."""
    with reported():
        try:
            loaded = load_plan(plan)
            from marketplace.config import Settings

            settings = Settings()
            counts = {
                "catalog": settings.catalog_shards,
                "inventory": settings.inventory_partitions,
                "carts": settings.cart_shards,
                "payments": settings.payment_processors,
                "shipments": settings.shipment_coordinators,
                "orders": settings.order_coordinators,
                "replicas": settings.catalog_shards * settings.catalog_replicas,
            }
            drawn = schedule(loaded, duration, counts, seed=seed)
        except PlanError as exc:
            raise CliError(f"fault plan refused: {exc}", code=2) from None
        table = Table(
            title=f"{loaded.name} (seed {drawn.seed}, {duration:g} s)", title_justify="left"
        )
        for column in ("id", "at s", "until s", "fault"):
            table.add_column(column, justify="left" if column in ("id", "fault") else "right")
        for fault in drawn.faults:
            table.add_row(fault.id, f"{fault.start:.1f}", f"{fault.end:.1f}", fault.describe())
        console.print(table)
