"""``marketplace seed``: fill the marketplace with a synthetic market and write its manifest."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import sqlalchemy.exc
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketplace.cli.output import CliError, console, reported
from marketplace.cli.session import marketplace_session
from marketplace.domain.errors import DomainError
from marketplace.sim.manifest import SeedManifest, default_manifest_path
from marketplace.sim.market import DEFAULT_ZIPF, SyntheticMarket, generate_market
from marketplace.sim.seed import seed_market


def seed_command(
    sellers: Annotated[int, typer.Option(min=0, help="Sellers to register.")] = 5,
    products: Annotated[int, typer.Option(min=0, help="Products to list.")] = 200,
    buyers: Annotated[int, typer.Option(min=0, help="Buyers to register.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    zipf: Annotated[
        float, typer.Option(min=0.0, help="Zipf exponent of product popularity (0: uniform).")
    ] = DEFAULT_ZIPF,
    stock_min: Annotated[int, typer.Option(min=0, help="Least initial stock per product.")] = 20,
    stock_max: Annotated[int, typer.Option(min=0, help="Most initial stock per product.")] = 200,
    manifest: Annotated[
        Path | None,
        typer.Option(help="Where to write the manifest (default .marketplace/seed.json)."),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Requests in flight at once (registrations: at most one less than the"
            " database pool holds).",
        ),
    ] = 32,
) -> None:
    """Fill the marketplace with a synthetic market (sellers, products with stock, buyers).

    Joins the marketplace that `marketplace up` runs in this directory, or else starts one for
    the length of the command. Writes a manifest (users, shared password, product ids with
    popularity weights) for load tests and notebooks. Seeding the same seed twice is harmless.
    """
    with reported():
        try:
            market = generate_market(
                seed,
                sellers=sellers,
                products=products,
                buyers=buyers,
                zipf=zipf,
                stock_min=stock_min,
                stock_max=stock_max,
            )
        except ValueError as exc:
            raise CliError(str(exc), code=2) from None
        path = manifest if manifest is not None else default_manifest_path()
        began = time.monotonic()
        try:
            result = asyncio.run(_seed(market, path, concurrency))
        except DomainError as exc:
            raise CliError(f"seeding failed: {exc.message}") from None
        except sqlalchemy.exc.TimeoutError:
            # No connection came free in the pool's time: the database is too slow for now
            # (a loaded machine, a held lock), which a traceback would only hide.
            raise CliError(
                "seeding failed: no database connection came free in time (the database is "
                "busy or the machine is loaded); run it again, or with a lower --concurrency. "
                "Seeding the same seed again is harmless."
            ) from None
        _print_seed_summary(result, path, time.monotonic() - began)


async def _seed(market: SyntheticMarket, path: Path, concurrency: int) -> SeedManifest:
    async with marketplace_session() as session:
        console.print(session.description, soft_wrap=True, highlight=False)
        with Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("Seeding", total=None)

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=f"Seeding {phase}")

            return await seed_market(
                session.client,
                market,
                concurrency=concurrency,
                progress=progress,
                manifest_path=path,
                namespace=session.settings.namespace,
                database_url=session.settings.database_url,
            )


def _print_seed_summary(manifest: SeedManifest, path: Path, took: float) -> None:
    table = Table(title="Seeded market", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    table.add_row("Seed / Zipf", f"{manifest.seed} / {manifest.zipf}")
    table.add_row("Sellers", str(len(manifest.sellers)))
    table.add_row("Buyers", str(len(manifest.buyers)))
    table.add_row("Products", str(len(manifest.products)))
    table.add_row("Categories", ", ".join(manifest.categories) or "-")
    table.add_row("Units stocked", str(sum(p.stock for p in manifest.products)))
    top = ", ".join(f"{p.name} ({p.weight:.1%})" for p in manifest.products[:3])
    table.add_row("Most popular", top or "-")
    table.add_row("Password", manifest.password)
    table.add_row("Manifest", str(path))
    table.add_row("Took", f"{took:.1f} s")
    console.print(table)
