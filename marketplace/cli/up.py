"""``marketplace up``: run a marketplace in the foreground and record where it is.

Starts Ray, the schema, the actors and (unless --no-gateway) the HTTP gateway, writes
``.marketplace/runtime.json`` for ``seed`` and ``audit`` to join, and stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from marketplace.cli.leftovers import point_haproxy_config, stop_leftovers
from marketplace.cli.output import CliError, console, err_console, reported
from marketplace.cli.runtime_state import (
    RUNTIME_FILE,
    read_runtime,
    remove_runtime_file,
    running,
    runtime_info,
    settings_and_new_secrets,
    up_lock,
    write_json,
)
from marketplace.config import Durability, Settings, Topology, mask_url
from marketplace.local_secrets import SECRETS_FILE


def _gateway_line(gateway: dict[str, Any] | None) -> str:
    """What the panel says about HTTP."""
    if gateway is None:
        return "HTTP gateway: off (--no-gateway)"
    return (
        f"HTTP gateway: {gateway['url']}  (docs: {gateway['url']}/docs, "
        f"ingress: {gateway['ingress']})"
    )


def up(
    catalog_shards: Annotated[
        int | None, typer.Option(min=1, max=256, help="Catalog shards (products, search).")
    ] = None,
    inventory_partitions: Annotated[
        int | None, typer.Option(min=1, max=256, help="Inventory partitions (stock).")
    ] = None,
    cart_shards: Annotated[int | None, typer.Option(min=1, max=256, help="Cart shards.")] = None,
    order_coordinators: Annotated[
        int | None, typer.Option(min=1, max=256, help="Order coordinators (checkout sagas).")
    ] = None,
    payment_processors: Annotated[
        int | None, typer.Option(min=1, max=256, help="Payment processors.")
    ] = None,
    shipment_coordinators: Annotated[
        int | None, typer.Option(min=1, max=256, help="Shipment coordinators.")
    ] = None,
    durability: Annotated[
        Durability | None,
        typer.Option(case_sensitive=False, help="sync (default), async (write-behind) or none."),
    ] = None,
    topology: Annotated[
        Topology | None,
        typer.Option(
            case_sensitive=False,
            help="distributed (default: a process per actor) or colocated (a process per "
            "partition index hosts one actor of each kind).",
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in ./.marketplace/).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting a local one.")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Ray namespace of the actors.")] = None,
    num_cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs of the local Ray (default: all).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="HTTP host (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="HTTP port (default 8000).")
    ] = None,
    gateway: Annotated[
        bool, typer.Option(help="Serve the HTTP gateway (--no-gateway: actors only).")
    ] = True,
    trace_sample: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Trace this fraction of requests across the actors (default 0: none); "
            "`marketplace trace ORDER_ID` shows one.",
        ),
    ] = None,
) -> None:
    """Start the marketplace and run it in the foreground until Ctrl+C (SIGINT) or SIGTERM.

    Starts a local Ray (or joins MARKETPLACE_RAY_ADDRESS), migrates the database, creates the
    actors, serves the HTTP gateway on Ray Serve (HAProxy ingress where available) and writes
    .marketplace/runtime.json so that `seed` and `audit` can join it. Options override the
    MARKETPLACE_* environment.
    """
    with reported():
        settings, generated = settings_and_new_secrets(
            catalog_shards=catalog_shards,
            inventory_partitions=inventory_partitions,
            cart_shards=cart_shards,
            order_coordinators=order_coordinators,
            payment_processors=payment_processors,
            shipment_coordinators=shipment_coordinators,
            durability=durability,
            topology=topology,
            database_url=database_url,
            ray_address=ray_address,
            namespace=namespace,
            ray_num_cpus=num_cpus,
            http_host=host,
            http_port=port,
            trace_sample=trace_sample,
        )
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        _refuse_if_running(state_dir)
        with up_lock(state_dir):
            _refuse_if_running(state_dir)  # it may have written runtime.json meanwhile
            if read_runtime(state_dir) is not None:
                console.print(
                    "Replacing a stale .marketplace/runtime.json (its process is gone).",
                    highlight=False,
                )
            # HAProxy processes an earlier `up` here left holding the port (its whole process
            # group killed at once, or SIGKILL): no marketplace runs here, so they are stale.
            left = stop_leftovers(state_dir)
            if left:
                console.print(
                    f"Stopped HAProxy left behind by an earlier run here (pid "
                    f"{', '.join(map(str, left))}).",
                    highlight=False,
                )
            try:
                asyncio.run(_up(settings, state_dir, serve_http=gateway, generated=generated))
            except KeyboardInterrupt:
                err_console.print("interrupted while starting; stopped.")
                raise typer.Exit(130) from None


def _refuse_if_running(state_dir: Path) -> None:
    found = running(state_dir)
    if found is not None:
        pid = found["pid"]
        raise CliError(
            f"a marketplace is already running (pid {pid}) in {state_dir.parent}, "
            f"Ray at {found.get('ray_address')}; stop it first (Ctrl+C in its terminal, or "
            f"kill -INT {pid}), or use `marketplace seed` / `marketplace audit` to work with it"
        )


async def _up(
    settings: Settings, state_dir: Path, *, serve_http: bool, generated: list[str]
) -> None:
    from actors.runtime import Runtime
    from serve_app.serving import choose_ingress, start_gateway, stop_gateway

    if serve_http:
        point_haproxy_config(state_dir)  # so that this run's HAProxy can be found (leftovers)
    ingress = choose_ingress(settings) if serve_http else None  # before Ray starts

    runtime = Runtime(settings)
    runtime_file = state_dir / RUNTIME_FILE
    stop = asyncio.Event()
    began = time.monotonic()
    written = False

    def request_stop(signum: int) -> None:
        if stop.is_set():
            console.print("Already stopping; please wait.")
            return
        console.print(f"\nReceived {signal.Signals(signum).name}: stopping the marketplace...")
        stop.set()

    try:
        console.print("Starting the marketplace (Ray, database, actors)...", highlight=False)
        await runtime.start()
        # Ray's init installs its own SIGTERM handler, so ours go in after it.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, request_stop, signum)
        gateway_info = None
        if serve_http:
            console.print("Starting the HTTP gateway (Ray Serve)...", highlight=False)
            try:
                url = await asyncio.to_thread(start_gateway, runtime.settings)
            except RuntimeError as exc:
                raise CliError(str(exc)) from None
            gateway_info = {"url": url, "ingress": ingress}
        info = runtime_info(runtime.settings, runtime.started_ray, gateway_info)
        write_json(runtime_file, info)
        written = True
        took = time.monotonic() - began
        console.print(_up_panel(runtime.settings, info, runtime_file, took, generated))
        await stop.wait()
    finally:
        if written:
            remove_runtime_file(runtime_file)
        # Stopping Ray stops Serve's HAProxy only while its proxy actor lives to do it; a
        # SIGTERM to the whole process group ends that actor first (HAProxy, in the actor's
        # own process group, gets no signal), and stopping a Ray whose GCS is gone can take a
        # minute. So this run's HAProxy is stopped first, and once more after Ray.
        owns_haproxy = serve_http and runtime.started_ray
        try:
            if owns_haproxy:
                await _stop_haproxy(state_dir)
            if serve_http and not runtime.started_ray:
                await asyncio.to_thread(stop_gateway)
            await runtime.stop()
        finally:
            if owns_haproxy:
                await _stop_haproxy(state_dir)
        console.print("Marketplace stopped.")


async def _stop_haproxy(state_dir: Path) -> None:
    left = await asyncio.to_thread(stop_leftovers, state_dir)
    if left:
        console.print(f"Stopped this run's HAProxy (pid {', '.join(map(str, left))}).")


def _actor_counts(settings: Settings) -> dict[str, int]:
    from actors.directory import ALL_KINDS, Directory

    directory = Directory(settings)
    return {kind.name: directory.count(kind) for kind in ALL_KINDS}


def _admin_line(settings: Settings, generated: list[str]) -> Text:
    """Who the admin is and where the password is: shown in full only when generated now."""
    credentials = settings.admin_credentials()
    if credentials is None:
        return Text("none (no MARKETPLACE_ADMIN_PASSWORD)")
    email, password = credentials
    if "admin_password" in generated:
        return Text(f"{email} / {password}  (generated; shown once, kept in {SECRETS_FILE})")
    if os.environ.get("MARKETPLACE_ADMIN_PASSWORD"):
        return Text(f"{email} (password from MARKETPLACE_ADMIN_PASSWORD)")
    return Text(f"{email} (password in .marketplace/{SECRETS_FILE})")


def _up_panel(
    settings: Settings, info: dict[str, Any], runtime_file: Path, took: float, generated: list[str]
) -> Panel:
    counts = _actor_counts(settings)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    grid.add_row("Database", Text(mask_url(settings.database_url)))
    grid.add_row("Durability", settings.durability.value)
    grid.add_row("Topology", settings.topology.value)
    ray_where = "started here" if info["started_ray"] else "joined"
    cpus = f", {info['ray_cpus']:g} CPUs" if info.get("ray_cpus") else ""
    grid.add_row("Ray", Text(f"{info['ray_address']} ({ray_where}{cpus})"))
    grid.add_row("Namespace", settings.namespace)
    from actors.directory import cell_count  # Ray is running by now: no cost to import

    roles = sum(counts.values())
    where = (
        f"{roles} roles in {cell_count(settings)} cell(s), one process each"
        if settings.topology is Topology.COLOCATED
        else f"{roles} in all"
    )
    grid.add_row(
        "Actors",
        " · ".join(f"{name} {count}" for name, count in counts.items()) + f"  ({where})",
    )
    grid.add_row("Admin", _admin_line(settings, generated))
    if settings.trace_sample > 0:
        from marketplace.trace_export import trace_dir

        where_to = settings.otlp_endpoint or str(trace_dir(settings))
        grid.add_row(
            "Traces",
            Text(
                f"{settings.trace_sample:.0%} of requests -> {where_to} "
                "(marketplace trace ORDER_ID)"
            ),
        )
    grid.add_row("State file", Text(str(runtime_file)))
    body = Group(
        grid,
        Text(""),
        Text(_gateway_line(info.get("gateway"))),
        Text(f"pid {os.getpid()} · ready in {took:.1f} s · press Ctrl+C to stop", style="dim"),
    )
    return Panel(body, title="Marketplace is running", border_style="green", expand=False)
