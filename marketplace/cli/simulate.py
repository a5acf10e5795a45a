"""``marketplace simulate``: run a seeded market's workload against the marketplace and write
what happened (CSV, plots, anomalies, the audit) to a results folder."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketplace.cli.output import CliError, console, reported
from marketplace.sim.loops import OpRecord, RunResult, Target, percentile
from marketplace.sim.presets import PRESETS
from marketplace.sim.simulation import SimConfig, build_market, simulate

if TYPE_CHECKING:
    from marketplace.audit import AuditReport
    from marketplace.sim.market import SyntheticMarket


class Via(StrEnum):
    """How the simulator reaches the marketplace."""

    CLIENT = "client"
    HTTP = "http"


def simulate_command(
    preset: Annotated[
        str, typer.Option(help=f"Workload preset: {', '.join(sorted(PRESETS))}.")
    ] = "om",
    rate: Annotated[
        float, typer.Option(min=0.0, help="Open loop: operations per second (Poisson).")
    ] = 50.0,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of load.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the market and of the workload.")] = 7,
    agents: Annotated[
        int | None,
        typer.Option(min=1, help="Closed loop instead: this many agents, each waiting its turn."),
    ] = None,
    think_time: Annotated[
        float, typer.Option(min=0.001, help="Closed loop: seconds an agent waits between ops.")
    ] = 1.0,
    via: Annotated[Via, typer.Option(help="In-process client, or HTTP through the gateway.")] = (
        Via.CLIENT
    ),
    host: Annotated[str | None, typer.Option(help="With --via http: the gateway's URL.")] = None,
    products: Annotated[int, typer.Option(min=1, help="Products in the market.")] = 500,
    buyers: Annotated[int, typer.Option(min=1, help="Buyers in the market.")] = 200,
    sellers: Annotated[int, typer.Option(min=1, help="Sellers in the market.")] = 10,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Open loop: operations outstanding before new ones drop.")
    ] = 2_000,
    out: Annotated[
        Path | None,
        typer.Option(help="Results folder (default results/simulate/<time>-<preset>)."),
    ] = None,
) -> None:
    """Drive the marketplace with a seeded market's workload and write what happened.

    Seeds the market (idempotent: the same seed reuses what is there), runs the preset's
    operations at `--rate` (open loop, latency from each operation's intended start) or with
    `--agents` (closed loop), checks the invariants at the end, and writes per-operation CSV,
    throughput and latency plots and a summary to the results folder. With `--via client` (the
    default) it joins the marketplace that `marketplace up` runs here, or starts one for the
    length of the command; with `--via http --host URL` it seeds and drives the gateway at URL
    (carriers are created with the MARKETPLACE_ADMIN_* account) and audits through
    /v1/admin/audit. Exits 1 when an invariant is broken.
    """
    with reported():
        try:
            config = SimConfig(
                preset=preset,
                rate=rate,
                duration=duration,
                seed=seed,
                agents=agents,
                think_time=think_time,
                max_in_flight=max_in_flight,
                sellers=sellers,
                products=products,
                buyers=buyers,
            )
        except ValueError as exc:
            raise CliError(str(exc), code=2) from None
        if via is Via.HTTP and not host:
            raise CliError("--via http needs --host URL (e.g. http://127.0.0.1:8000)", code=2)
        if via is Via.CLIENT and host:
            raise CliError("--host is for --via http", code=2)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = out if out is not None else Path("results", "simulate", f"{stamp}-{preset}")
        outcome = asyncio.run(_run(config, via, host))
        body = _write(folder, config, via, outcome)
        _print_summary(outcome.result, body, folder)
        if outcome.audit is not None:
            from marketplace.cli.audit import print_audit

            print_audit(outcome.audit)
            if not outcome.audit.ok:
                raise typer.Exit(1)


class _Outcome:
    def __init__(
        self,
        result: RunResult,
        counters: dict[str, int],
        audit: AuditReport | None,
    ) -> None:
        self.result = result
        self.counters = counters
        self.audit = audit


async def _run(config: SimConfig, via: Via, host: str | None) -> _Outcome:
    market = build_market(config)
    if via is Via.HTTP:
        assert host is not None
        return await _run_http(config, market, host.rstrip("/"))
    from marketplace.cli.session import marketplace_session
    from marketplace.sim.client_target import ClientTarget
    from marketplace.sim.seed import seed_market

    async with marketplace_session() as session:
        console.print(session.description, soft_wrap=True, highlight=False)
        client = session.client
        _print_seeding(config, market, "")
        manifest = await seed_market(client, market, write=False)
        before = await client.order_stats()
        result = await _with_progress(ClientTarget(client, manifest), market, config)
        counters = _delta(before, await client.order_stats())
        console.print("Checking the invariants...")
        report = await client.audit()
    return _Outcome(result, counters, report)


async def _run_http(config: SimConfig, market: SyntheticMarket, host: str) -> _Outcome:
    import httpx

    from marketplace.audit import AuditReport
    from marketplace.cli.runtime_state import settings_from
    from marketplace.sim.behaviours import carrier_ids
    from marketplace.sim.http_seed import SeedError, bearer, describe, login, seed_over_http
    from marketplace.sim.http_target import HttpTarget

    settings = settings_from()
    admin = (settings.admin_email, settings.admin_password.get_secret_value())
    _print_seeding(config, market, f" over HTTP at {host}")
    try:
        seeded = await seed_over_http(
            host,
            market,
            carriers=carrier_ids(market, config.the_preset.carriers),
            admin_email=admin[0],
            admin_password=admin[1],
        )
    except (SeedError, httpx.HTTPError) as exc:
        raise CliError(f"seeding over HTTP at {host} failed: {exc}") from None
    async with HttpTarget(seeded) as target:
        result = await _with_progress(target, market, config)
    console.print("Checking the invariants (GET /v1/admin/audit)...")
    try:
        async with httpx.AsyncClient(base_url=host, timeout=300) as http:
            token = await login(http, *admin)
            reply = await http.get("/v1/admin/audit", headers=bearer(token))
    except (SeedError, httpx.HTTPError) as exc:
        raise CliError(f"the audit over HTTP failed: {exc}") from None
    if reply.status_code != 200:
        raise CliError(f"the audit over HTTP failed: {describe(reply)}")
    # The coordinators' counters are not part of the HTTP contract; /metrics has them.
    return _Outcome(result, {}, AuditReport.model_validate_json(reply.content))


def _print_seeding(config: SimConfig, market: SyntheticMarket, where: str) -> None:
    console.print(
        f"Seeding the market of seed {config.seed}{where}: {len(market.sellers)} sellers, "
        f"{len(market.buyers)} buyers, {len(market.products)} products...",
        highlight=False,
    )


async def _with_progress(target: Target, market: SyntheticMarket, config: SimConfig) -> RunResult:
    meter = _Meter()
    with Progress(
        TextColumn("[bold]Simulating"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("sim", total=config.duration, line="")
        started = time.monotonic()

        async def refresh() -> None:
            while True:
                elapsed = time.monotonic() - started
                bar.update(task, completed=min(elapsed, config.duration), line=meter.line())
                await asyncio.sleep(0.25)

        ticker = asyncio.create_task(refresh())
        try:
            result = await simulate(target, market, config, on_record=meter.record)
        finally:
            ticker.cancel()
        bar.update(task, completed=config.duration, line=meter.line())
    return result


class _Meter:
    """Running counts for the progress line; p99 over the last 500 completed operations."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.dropped = 0
        self.recent: deque[float] = deque(maxlen=500)
        self.started = time.monotonic()

    def record(self, entry: OpRecord) -> None:
        self.done += 1
        if entry.latency is None:
            self.dropped += 1
        else:
            self.recent.append(entry.latency)
        if not entry.outcome.ok:
            self.failed += 1

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        p99 = percentile(list(self.recent), 99)
        p99_text = "-" if p99 is None else f"{p99 * 1000:.0f} ms"
        return (
            f"{self.done} ops  {self.done / elapsed:.0f}/s  failed {self.failed}  "
            f"dropped {self.dropped}  p99 {p99_text}"
        )


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    # status_* are how many orders sit in a status now; the rest are counters since start.
    return {
        key: value if key.startswith("status_") else value - before.get(key, 0)
        for key, value in sorted(after.items())
        if value != before.get(key, 0) or key.startswith("status_")
    }


def _write(folder: Path, config: SimConfig, via: Via, outcome: _Outcome) -> dict[str, Any]:
    from marketplace.sim.results import write_results

    settings = {**asdict(config), "via": via.value}
    audit = outcome.audit.model_dump(mode="json") if outcome.audit is not None else None
    return write_results(
        folder,
        outcome.result,
        config=settings,
        saga_counters=outcome.counters,
        audit=audit,
        title=config.describe(),
    )


def _print_summary(result: RunResult, body: dict[str, Any], folder: Path) -> None:
    summary = result.summary
    table = Table(title="Operations", title_justify="left")
    for column in ("kind", "count", "ok", "failed", "dropped", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, stats in summary.kinds.items():
        table.add_row(
            kind,
            str(stats.count),
            str(stats.ok),
            str(stats.failed),
            str(stats.dropped),
            _ms(stats.p50),
            _ms(stats.p99),
        )
    console.print(table)
    console.print(
        f"Offered {summary.offered_rate:.1f} ops/s, achieved {summary.achieved_rate:.1f} ops/s "
        f"over {summary.elapsed:.1f} s: {summary.ok} ok, {summary.failed} failed, "
        f"{summary.dropped} dropped.",
        highlight=False,
    )
    if body["anomalies"]:
        shown = ", ".join(f"{k} {v}" for k, v in list(body["anomalies"].items())[:8])
        console.print(f"Failures by reason: {shown}", highlight=False)
    if body["saga_counters"]:
        shown = ", ".join(f"{k} {v}" for k, v in body["saga_counters"].items())
        console.print(f"Checkouts (the coordinators' counters): {shown}", highlight=False)
    console.print(f"Results: {folder}/ (ops.csv, kinds.csv, timeline.csv, *.png, summary.json)")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"
