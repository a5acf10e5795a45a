"""The ``marketplace`` command: ``up``, ``seed``, ``audit``, ``load`` and ``events``.

``up`` runs a marketplace in the foreground (Ray, schema, actors) and records where it is in
``.marketplace/runtime.json``; ``seed`` and ``audit`` join that one when it runs, or else start
an in-process marketplace on the configured database for the length of the command.

Ray and the actors are imported inside the functions that need them, so ``--help`` is quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console, Group
from rich.logging import RichHandler
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from load.cli import load_command
from marketplace.config import Durability, Settings, to_async_url
from marketplace.domain.errors import DomainError
from marketplace.events.cli import events_app
from marketplace.sim.seed import (
    DEFAULT_ZIPF,
    SeedManifest,
    SyntheticMarket,
    default_manifest_path,
    generate_market,
    mask_url,
    seed_market,
)

if TYPE_CHECKING:
    from actors.client import MarketplaceClient
    from marketplace.audit import AuditReport

RAY_AUTH_MODE = "RAY_AUTH_MODE"
# Ray is imported lazily below, so this still takes effect: under `uv run`, Ray's uv hook would
# start every worker through uv with the working directory shipped as a package.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
RUNTIME_FILE = "runtime.json"
LOCK_FILE = "up.lock"
COUNT_SETTINGS = (
    "catalog_shards",
    "inventory_partitions",
    "cart_shards",
    "order_coordinators",
    "payment_processors",
    "shipment_coordinators",
)

app = typer.Typer(
    name="marketplace",
    help="Run, seed, audit and load-test the actor-model marketplace, and tail its events.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(events_app, name="events")
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("marketplace.cli")


class CliError(Exception):
    """A failure to report in one line and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Turn a CliError into a message on stderr and an exit code."""
    try:
        yield
    except CliError as exc:
        # The message is plain text (it may quote paths like "[/tmp/x]"), never rich markup.
        err_console.print(
            Text.assemble(("error: ", "bold red"), exc.message), soft_wrap=True, highlight=False
        )
        raise typer.Exit(exc.code) from None


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the runtime does (INFO level).")
    ] = False,
) -> None:
    """Run, seed and audit the actor-model marketplace.

    Settings come from MARKETPLACE_* environment variables (see DESIGN.md section 8); state
    files live in ./.marketplace/.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


# -- settings and runtime.json ----------------------------------------------------------------


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options that were given on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise CliError(f"invalid settings: {exc}", code=2) from None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_runtime(state_dir: Path) -> dict[str, Any] | None:
    """The contents of runtime.json, or None when absent or unreadable."""
    try:
        data = json.loads((state_dir / RUNTIME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _running(state_dir: Path) -> dict[str, Any] | None:
    """runtime.json of a marketplace that runs now (its pid is alive), else None."""
    data = _read_runtime(state_dir)
    if data is None:
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not _pid_alive(pid):
        return None
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically, readable by the owner only."""
    scratch = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    scratch.replace(path)


def _has_password(url: str) -> bool:
    try:
        return bool(make_url(url).password)
    except Exception:
        return False


def _gateway_line(gateway: dict[str, Any] | None) -> str:
    """What the panel says about HTTP."""
    if gateway is None:
        return "HTTP gateway: off (--no-gateway)"
    return (
        f"HTTP gateway: {gateway['url']}  (docs: {gateway['url']}/docs, "
        f"ingress: {gateway['ingress']})"
    )


def _runtime_info(
    settings: Settings, started_ray: bool, gateway: dict[str, Any] | None
) -> dict[str, Any]:
    """The non-secret facts that let another process find and route to this marketplace."""
    import ray

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(),
        "ray_address": ray.get_runtime_context().gcs_address,
        "started_ray": started_ray,
        "ray_cpus": ray.cluster_resources().get("CPU"),  # type: ignore[no-untyped-call]
        # Ray >= 2.5x turns token auth on for a cluster ray.init() starts, but a process that
        # joins by address only sends the token (~/.ray/auth_token) when told to.
        "ray_auth_mode": os.environ.get(RAY_AUTH_MODE),
        "namespace": settings.namespace,
        "durability": settings.durability.value,
        "counts": {name: getattr(settings, name) for name in COUNT_SETTINGS},
        "actor_num_cpus": settings.actor_num_cpus,
        "database_url": mask_url(settings.database_url),
        "database_url_masked": _has_password(settings.database_url),
        "gateway": gateway,
    }


def _join_settings(base: Settings, running: dict[str, Any]) -> Settings:
    """Settings that route exactly as the running marketplace does."""
    recorded = str(running.get("database_url") or "")
    if base.database_url:
        url = base.database_url
        if recorded and mask_url(to_async_url(url)) != recorded:
            err_console.print(
                f"[yellow]warning:[/] MARKETPLACE_DATABASE_URL ({mask_url(url)}) is not the "
                f"running marketplace's database ({recorded})",
                soft_wrap=True,
                highlight=False,
            )
    elif recorded and not running.get("database_url_masked"):
        url = recorded
    else:
        raise CliError(
            "the running marketplace's database URL holds a password, which runtime.json does "
            "not record: set MARKETPLACE_DATABASE_URL to join it"
        )
    counts = running.get("counts") or {}
    try:
        return Settings(
            database_url=url,
            ray_address=running["ray_address"],
            namespace=running["namespace"],
            durability=Durability(running["durability"]),
            actor_num_cpus=running.get("actor_num_cpus", base.actor_num_cpus),
            **{name: counts[name] for name in COUNT_SETTINGS if name in counts},
        )
    except (KeyError, ValueError, ValidationError) as exc:
        raise CliError(f"runtime.json is not usable ({exc}); is the marketplace healthy?") from None


@contextlib.contextmanager
def _up_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``.marketplace/up.lock`` so two ``up`` in one directory never race at start-up."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: runtime.json is the only guard
        yield
        return
    path = state_dir / LOCK_FILE
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise CliError(
                f"a marketplace is already running (pid {holder}, still starting) in "
                f"{state_dir.parent}; stop it first (Ctrl+C in its terminal, or kill -INT "
                f"{holder})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


# -- up ---------------------------------------------------------------------------------------


@app.command()
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
) -> None:
    """Start the marketplace and run it in the foreground until Ctrl+C (SIGINT) or SIGTERM.

    Starts a local Ray (or joins MARKETPLACE_RAY_ADDRESS), migrates the database, creates the
    actors, serves the HTTP gateway on Ray Serve (HAProxy ingress where available) and writes
    .marketplace/runtime.json so that `seed` and `audit` can join it. Options override the
    MARKETPLACE_* environment.
    """
    with _reported():
        settings = _settings(
            catalog_shards=catalog_shards,
            inventory_partitions=inventory_partitions,
            cart_shards=cart_shards,
            order_coordinators=order_coordinators,
            payment_processors=payment_processors,
            shipment_coordinators=shipment_coordinators,
            durability=durability,
            database_url=database_url,
            ray_address=ray_address,
            namespace=namespace,
            ray_num_cpus=num_cpus,
            http_host=host,
            http_port=port,
        )
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        _refuse_if_running(state_dir)
        with _up_lock(state_dir):
            _refuse_if_running(state_dir)  # it may have written runtime.json meanwhile
            if _read_runtime(state_dir) is not None:
                console.print(
                    "Replacing a stale .marketplace/runtime.json (its process is gone).",
                    highlight=False,
                )
            try:
                asyncio.run(_up(settings, state_dir, serve_http=gateway))
            except KeyboardInterrupt:
                err_console.print("interrupted while starting; stopped.")
                raise typer.Exit(130) from None


def _refuse_if_running(state_dir: Path) -> None:
    running = _running(state_dir)
    if running is not None:
        pid = running["pid"]
        raise CliError(
            f"a marketplace is already running (pid {pid}) in {state_dir.parent}, "
            f"Ray at {running.get('ray_address')}; stop it first (Ctrl+C in its terminal, or "
            f"kill -INT {pid}), or use `marketplace seed` / `marketplace audit` to work with it"
        )


async def _up(settings: Settings, state_dir: Path, *, serve_http: bool) -> None:
    from actors.runtime import Runtime
    from serve_app.serving import choose_ingress, start_gateway, stop_gateway

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
        info = _runtime_info(runtime.settings, runtime.started_ray, gateway_info)
        _write_json(runtime_file, info)
        written = True
        console.print(_up_panel(runtime.settings, info, runtime_file, time.monotonic() - began))
        await stop.wait()
    finally:
        if written:
            _remove_runtime_file(runtime_file)
        if serve_http and not runtime.started_ray:
            await asyncio.to_thread(stop_gateway)
        await runtime.stop()
        console.print("Marketplace stopped.")


def _remove_runtime_file(path: Path) -> None:
    data = _read_runtime(path.parent)
    if data is not None and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def _actor_counts(settings: Settings) -> dict[str, int]:
    from actors.directory import ALL_KINDS, Directory

    directory = Directory(settings)
    return {kind.name: directory.count(kind) for kind in ALL_KINDS}


def _up_panel(settings: Settings, info: dict[str, Any], runtime_file: Path, took: float) -> Panel:
    counts = _actor_counts(settings)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    grid.add_row("Database", Text(mask_url(settings.database_url)))
    grid.add_row("Durability", settings.durability.value)
    ray_where = "started here" if info["started_ray"] else "joined"
    cpus = f", {info['ray_cpus']:g} CPUs" if info.get("ray_cpus") else ""
    grid.add_row("Ray", Text(f"{info['ray_address']} ({ray_where}{cpus})"))
    grid.add_row("Namespace", settings.namespace)
    grid.add_row(
        "Actors",
        " · ".join(f"{name} {count}" for name, count in counts.items())
        + f"  ({sum(counts.values())} in all)",
    )
    grid.add_row("State file", Text(str(runtime_file)))
    body = Group(
        grid,
        Text(""),
        Text(_gateway_line(info.get("gateway"))),
        Text(f"pid {os.getpid()} · ready in {took:.1f} s · press Ctrl+C to stop", style="dim"),
    )
    return Panel(body, title="Marketplace is running", border_style="green", expand=False)


# -- join or start ----------------------------------------------------------------------------


@dataclass
class Session:
    """A marketplace a command works with, and how the command got it."""

    client: MarketplaceClient
    settings: Settings
    joined: bool
    description: str


def _starting_pid(state_dir: Path) -> str | None:
    """The pid of an ``up`` that holds the lock here (it runs or is starting), else None."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    path = state_dir / LOCK_FILE
    if not path.is_file():
        return None
    with path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return handle.read().strip() or "?"
        return None  # closing the file releases the probe's lock


async def _await_starting(state_dir: Path, timeout_s: float = 300.0) -> dict[str, Any] | None:
    """Wait for an ``up`` that is still starting here to write runtime.json, and return it.

    Without this, a ``seed`` or ``audit`` run in that window would start a second marketplace
    on the same database, whose writes the starting one's actors never see.
    """
    pid = _starting_pid(state_dir)
    if pid is None:
        return None
    console.print(f"Waiting for the marketplace that is starting here (pid {pid})...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = _running(state_dir)
        if running is not None:
            return running
        if _starting_pid(state_dir) is None:
            return None  # it stopped without starting: run in-process instead
        await asyncio.sleep(0.5)
    raise CliError(
        f"the marketplace starting here (pid {pid}) has not finished starting in "
        f"{timeout_s:.0f} s; see its terminal"
    )


@contextlib.asynccontextmanager
async def _marketplace() -> AsyncIterator[Session]:
    """Join the marketplace that `up` runs here, or start one for the length of the block.

    Joining: Ray address, namespace and routing settings come from runtime.json, and the actors
    are left running afterwards. Starting: a local Ray (or MARKETPLACE_RAY_ADDRESS) on the
    configured database; actors this block created are killed and a Ray it started is shut down
    at the end, and the data stays in the database for the next `up`.
    """
    base = _settings()
    running = _running(base.state_dir) or await _await_starting(base.state_dir)
    settings = _join_settings(base, running) if running is not None else base
    if running is not None and running.get("ray_auth_mode"):
        # Before Ray is imported: its config reads the variable once.
        os.environ.setdefault(RAY_AUTH_MODE, str(running["ray_auth_mode"]))

    import ray

    from actors.directory import ORDERS
    from actors.runtime import Runtime, init_ray

    try:
        started_ray, connected_ray = init_ray(settings)
    except Exception as exc:
        where = f"the running marketplace (pid {running['pid']})" if running else "Ray"
        raise CliError(f"could not connect to {where}: {exc}") from None
    try:
        ray.get_actor(f"{ORDERS.name}-0", namespace=settings.namespace)
        preexisting = True
    except ValueError:
        preexisting = False
    address = ray.get_runtime_context().gcs_address
    if running is not None:
        description = (
            f"Joined the running marketplace (pid {running['pid']}): Ray at {address}, "
            f"namespace {settings.namespace}."
        )
    elif preexisting:
        description = (
            f"Joined marketplace actors already running on Ray at {address} "
            f"(namespace {settings.namespace}); they are left running."
        )
    elif started_ray:
        description = (
            "No marketplace is running here: started an in-process one (local Ray) for this "
            "command; it stops afterwards and the data stays in the database."
        )
    else:
        description = (
            f"Started marketplace actors on the Ray cluster at {address} for this command; "
            "they stop afterwards and the data stays in the database."
        )
    runtime = Runtime(settings)
    try:
        await runtime.start()
        assert runtime.client is not None
        yield Session(
            client=runtime.client,
            settings=runtime.settings,
            joined=running is not None or preexisting,
            description=description,
        )
    finally:
        await runtime.stop(kill_actors=not preexisting)
        if (started_ray or connected_ray) and ray.is_initialized():
            ray.shutdown()  # for a joined cluster this only disconnects


# -- seed -------------------------------------------------------------------------------------


@app.command("seed")
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
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 32,
) -> None:
    """Fill the marketplace with a synthetic market (sellers, products with stock, buyers).

    Joins the marketplace that `marketplace up` runs in this directory, or else starts one for
    the length of the command. Writes a manifest (users, shared password, product ids with
    popularity weights) for load tests and notebooks. Seeding the same seed twice is harmless.
    """
    with _reported():
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
        _print_seed_summary(result, path, time.monotonic() - began)


async def _seed(market: SyntheticMarket, path: Path, concurrency: int) -> SeedManifest:
    async with _marketplace() as session:
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


# -- audit ------------------------------------------------------------------------------------


@app.command()
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
    with _reported():
        report = asyncio.run(_audit(max_pending_age, quiet=as_json))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_audit(report)
    if not report.ok:
        raise typer.Exit(1)


async def _audit(max_pending_age: float, *, quiet: bool) -> AuditReport:
    async with _marketplace() as session:
        (err_console if quiet else console).print(
            session.description, soft_wrap=True, highlight=False
        )
        return await session.client.audit(max_pending_age_s=max_pending_age)


def _print_audit(report: AuditReport, shown: int = 3) -> None:
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


app.command("load")(load_command)

if __name__ == "__main__":
    app()
