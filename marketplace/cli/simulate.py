"""``marketplace simulate``: run a seeded market's workload against the marketplace and write
what happened (CSV, plots, anomalies, the audit) to a results folder."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketplace.cli.output import CliError, console, reported
from marketplace.consistency import History, Mode
from marketplace.sim.loops import OpRecord, RunResult, Target, percentile
from marketplace.sim.presets import PRESETS
from marketplace.sim.simulation import SimConfig, build_market, simulate

if TYPE_CHECKING:
    from actors.client import MarketplaceClient
    from marketplace.audit import AuditReport
    from marketplace.config import Settings
    from marketplace.consistency import CheckResult
    from marketplace.sim.faults.injectors import FaultContext
    from marketplace.sim.faults.plan import FaultPlan, Schedule
    from marketplace.sim.faults.recovery import Recovery
    from marketplace.sim.faults.under_load import FaultedRun
    from marketplace.sim.market import SyntheticMarket

T = TypeVar("T")


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
    faults: Annotated[
        str | None,
        typer.Option(
            help="A fault plan (a TOML file, or a built-in: `marketplace faults list`) to run "
            "beside the load, seeded by --seed."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Results folder (default results/simulate/<time>-<preset>)."),
    ] = None,
    check_consistency: Annotated[
        Mode | None,
        typer.Option(
            help="Record product reads and writes (history.jsonl) and check them against this "
            "catalog consistency mode."
        ),
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
    /v1/admin/audit. With `--faults PLAN` the plan's faults happen during the load (with `--via
    http` they act on the marketplace `marketplace up` runs here); the results then hold each
    fault's errors and time to recover, the plots mark them, and the run also waits for every
    order to end. With `--check-consistency MODE` the product reads and writes are recorded
    (`history.jsonl`) and checked against MODE (`marketplace/consistency/README.md`). Exits 1
    when an invariant is broken, orders are left unfinished or the history breaks MODE.
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
        plan = _load_plan(faults) if faults else None
        config = dataclasses.replace(config, faults=faults)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = out if out is not None else Path("results", "simulate", f"{stamp}-{preset}")
        # The marketplace may have been seeded and written before: versions start unknown.
        history = History(initial_version=None) if check_consistency is not None else None
        outcome = asyncio.run(_run(config, via, host, plan, history))
        verdict = None
        if history is not None and check_consistency is not None:
            verdict = _check_history(folder, history, check_consistency)
        body = _write(folder, config, via, outcome, verdict)
        _print_summary(outcome.result, body, folder)
        if verdict is not None:
            console.print(str(verdict), highlight=False)
        if outcome.faults is not None:
            _print_faults(outcome.faults)
        if outcome.audit is not None:
            from marketplace.cli.audit import print_audit

            print_audit(outcome.audit)
        unfinished = outcome.faults is not None and outcome.faults.unfinished
        inconsistent = verdict is not None and not verdict.ok
        if (outcome.audit is not None and not outcome.audit.ok) or unfinished or inconsistent:
            raise typer.Exit(1)


@dataclass
class _FaultOutcome:
    """What the fault plan did: each fault's recovery, and how the orders ended after it."""

    plan: FaultPlan
    seed: int
    recoveries: list[Recovery]
    settled_after_s: float | None
    left_pending: int
    acknowledged: int
    lost: list[str]

    @property
    def unfinished(self) -> bool:
        """Orders left pending 30 s after the plan, acknowledged orders the store lost, or a
        fault that could not be applied (the run is not what the plan says)."""
        not_applied = any(r.window.error for r in self.recoveries)
        return self.settled_after_s is None or bool(self.lost) or not_applied

    def summary(self) -> dict[str, Any]:
        return {
            "fault_plan": {"name": self.plan.name, "seed": self.seed},
            "orders_terminal_after_s": self.settled_after_s,
            "orders_left_pending": self.left_pending,
            "orders_acknowledged_confirmed": self.acknowledged,
            "orders_acknowledged_lost": self.lost,
        }


@dataclass
class _Outcome:
    result: RunResult
    counters: dict[str, int]
    audit: AuditReport | None
    faults: _FaultOutcome | None = None


def _load_plan(name_or_path: str) -> FaultPlan:
    from marketplace.sim.faults.plan import PlanError, load_plan

    try:
        return load_plan(name_or_path)
    except PlanError as exc:
        raise CliError(f"fault plan refused: {exc}", code=2) from None


async def _run(
    config: SimConfig,
    via: Via,
    host: str | None,
    plan: FaultPlan | None,
    history: History | None = None,
) -> _Outcome:
    market = build_market(config)
    if via is Via.HTTP and plan is None:
        assert host is not None
        return await _run_http(config, market, host.rstrip("/"), history=history)
    from marketplace.cli.session import marketplace_session
    from marketplace.sim.client_target import ClientTarget
    from marketplace.sim.seed import seed_market

    if via is Via.HTTP:
        from marketplace.cli.runtime_state import running, settings_from

        if running(settings_from().state_dir) is None:
            raise CliError(
                "--faults with --via http acts on the marketplace that `marketplace up` runs "
                "here, and none is running",
                code=2,
            )
    async with marketplace_session() as session:
        console.print(session.description, soft_wrap=True, highlight=False)
        client = session.client
        schedule = _schedule(plan, config, session.settings, client, via) if plan else None
        if via is Via.HTTP:
            assert host is not None
            return await _run_http(config, market, host.rstrip("/"), schedule, client, history)
        _print_seeding(config, market, "")
        manifest = await seed_market(client, market, write=False)
        before = await client.order_stats()
        target = ClientTarget(client, manifest, history=history)
        faulted = None
        if schedule is None:
            result = await _with_progress(target, market, config)
        else:
            faulted = await _with_progress_and_faults(target, market, config, schedule)
            result = faulted.result
        counters = _delta(before, await client.order_stats())
        fault_outcome = await _settle(schedule, faulted, client, target.deliveries.acknowledged)
        console.print("Checking the invariants...")
        report = await client.audit()
    return _Outcome(result, counters, report, fault_outcome)


def _schedule(
    plan: FaultPlan,
    config: SimConfig,
    settings: Settings,
    client: MarketplaceClient,
    via: Via,
) -> tuple[Schedule, FaultContext]:
    """The plan's faults for this run, checked against what runs here (exit 2 if not)."""
    from marketplace.sim.faults.plan import PlanError
    from marketplace.sim.faults.under_load import plan_for_run

    try:
        drawn, context = plan_for_run(plan, config, settings, client.directory, via.value)
    except PlanError as exc:
        raise CliError(f"fault plan refused: {exc}", code=2) from None
    console.print(
        f"Fault plan {plan.name} (seed {drawn.seed}): "
        + "; ".join(f"{f.start:g} s {f.describe()}" for f in drawn.faults),
        soft_wrap=True,
        highlight=False,
    )
    return drawn, context


async def _settle(
    schedule: tuple[Schedule, FaultContext] | None,
    faulted: FaultedRun | None,
    client: MarketplaceClient,
    acknowledged: list[str],
) -> _FaultOutcome | None:
    """After a fault plan: wait for every order to end (I3) and say how long it took, then
    look every order a checkout was told is confirmed up in the store (none may be lost)."""
    if schedule is None or faulted is None:
        return None
    from marketplace.config import Durability
    from marketplace.sim.faults.under_load import SETTLE_TIMEOUT_S, lost_orders, settle_orders

    async def pending() -> int:
        return (await client.order_stats()).get("status_pending", 0)

    console.print("Waiting for every order to end...")
    took, left = await settle_orders(pending)
    if took is None:
        console.print(
            f"[red]{left} orders still pending {SETTLE_TIMEOUT_S:g} s after the plan ended[/red]"
        )
    lost: list[str] = []
    if client.directory.settings.durability is Durability.SYNC:
        lost = await lost_orders(client.engine, acknowledged)
        if lost:
            console.print(
                f"[red]{len(lost)} of {len(acknowledged)} orders acknowledged as confirmed are "
                f"not in the store: {', '.join(lost[:5])}[/red]"
            )
    plan, seed = schedule[0].plan, schedule[0].seed
    return _FaultOutcome(plan, seed, faulted.recoveries, took, left, len(acknowledged), lost)


async def _with_progress_and_faults(
    target: Target,
    market: SyntheticMarket,
    config: SimConfig,
    schedule: tuple[Schedule, FaultContext],
) -> FaultedRun:
    from marketplace.sim.faults.under_load import simulate_under_faults

    drawn, context = schedule

    async def run(on_record: Callable[[OpRecord], None], say: Callable[[str], None]) -> FaultedRun:
        return await simulate_under_faults(
            target, market, config, drawn, context, on_record=on_record, say=say
        )

    return await _progress(config, run)


async def _run_http(
    config: SimConfig,
    market: SyntheticMarket,
    host: str,
    schedule: tuple[Schedule, FaultContext] | None = None,
    client: MarketplaceClient | None = None,
    history: History | None = None,
) -> _Outcome:
    import httpx

    from marketplace.audit import AuditReport
    from marketplace.cli.runtime_state import settings_from
    from marketplace.sim.behaviours import carrier_ids
    from marketplace.sim.http_seed import SeedError, bearer, describe, login, seed_over_http
    from marketplace.sim.http_target import HttpTarget

    settings = settings_from()
    admin = settings.admin_credentials()
    if admin is None:
        raise CliError(
            "seeding over HTTP logs in as the admin, and no admin password is known: set "
            "MARKETPLACE_ADMIN_PASSWORD to the one the marketplace at this URL uses",
            code=2,
        )
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
    faulted = None
    async with HttpTarget(seeded, history=history) as target:
        if schedule is None:
            result = await _with_progress(target, market, config)
        else:
            faulted = await _with_progress_and_faults(target, market, config, schedule)
            result = faulted.result
    fault_outcome = None
    if client is not None:
        fault_outcome = await _settle(schedule, faulted, client, target.deliveries.acknowledged)
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
    return _Outcome(result, {}, AuditReport.model_validate_json(reply.content), fault_outcome)


def _print_seeding(config: SimConfig, market: SyntheticMarket, where: str) -> None:
    console.print(
        f"Seeding the market of seed {config.seed}{where}: {len(market.sellers)} sellers, "
        f"{len(market.buyers)} buyers, {len(market.products)} products...",
        highlight=False,
    )


async def _with_progress(target: Target, market: SyntheticMarket, config: SimConfig) -> RunResult:
    async def run(on_record: Callable[[OpRecord], None], say: Callable[[str], None]) -> RunResult:
        del say
        return await simulate(target, market, config, on_record=on_record)

    return await _progress(config, run)


async def _progress(
    config: SimConfig,
    run: Callable[[Callable[[OpRecord], None], Callable[[str], None]], Awaitable[T]],
) -> T:
    """Run ``run(on_record, say)`` under a live progress line; ``say`` prints above it."""
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
            result = await run(meter.record, lambda line: bar.console.print(line, highlight=False))
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


def _check_history(folder: Path, history: History, mode: Mode) -> CheckResult:
    """Save the run's history in the results folder and check it against ``mode``."""
    from marketplace.consistency import check

    folder.mkdir(parents=True, exist_ok=True)
    history.save(folder / "history.jsonl")
    console.print(f"Checking {len(history)} product reads and writes against {mode.value}...")
    return check(history, mode)


def _write(
    folder: Path,
    config: SimConfig,
    via: Via,
    outcome: _Outcome,
    verdict: CheckResult | None = None,
) -> dict[str, Any]:
    from marketplace.sim.recording import verdict_summary
    from marketplace.sim.results import write_results

    settings = {**asdict(config), "via": via.value}
    audit = outcome.audit.model_dump(mode="json") if outcome.audit is not None else None
    faults = outcome.faults
    extra = dict(faults.summary()) if faults else {}
    if verdict is not None:
        extra["consistency"] = verdict_summary(verdict)
    return write_results(
        folder,
        outcome.result,
        config=settings,
        saga_counters=outcome.counters,
        audit=audit,
        title=config.describe(),
        faults=[r.row() for r in faults.recoveries] if faults else (),
        extra=extra or None,
    )


def _print_faults(faults: _FaultOutcome) -> None:
    title = f"Faults (plan {faults.plan.name}, seed {faults.seed})"
    table = Table(
        title=title,
        title_justify="left",
        caption="recovered in: from the fault's start until 3 s at 90% of the throughput "
        "before it with no errors (-: not within the run); healed: its target answered again",
        caption_justify="left",
    )
    for column in ("id", "fault", "at s", "healed s", "recovered in s", "errors", "pending"):
        table.add_column(column, justify="left" if column in ("id", "fault") else "right")
    for recovery in faults.recoveries:
        window = recovery.window
        table.add_row(
            window.id,
            window.description,
            f"{window.applied:.1f}",
            "-" if window.healed is None else f"{window.healed:.1f}",
            "-" if recovery.time_to_recover is None else f"{recovery.time_to_recover:.1f}",
            str(sum(recovery.errors.values())),
            str(recovery.pending),
        )
    console.print(table)
    for recovery in faults.recoveries:
        if recovery.window.error:
            console.print(
                f"  [red]{recovery.window.id} could not be applied: {recovery.window.error}[/red]",
                highlight=False,
            )
        if recovery.errors:
            reasons = ", ".join(f"{k} {v}" for k, v in recovery.errors.items())
            console.print(f"  {recovery.window.id} errors: {reasons}", highlight=False)
    if faults.settled_after_s is not None:
        console.print(
            f"Every order ended {faults.settled_after_s:.1f} s after the plan.", highlight=False
        )
    if faults.acknowledged and not faults.lost:
        console.print(
            f"All {faults.acknowledged} orders acknowledged as confirmed are in the store.",
            highlight=False,
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
