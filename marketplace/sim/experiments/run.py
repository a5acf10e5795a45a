"""Run an experiment: every point on a fresh runtime, then the report.

``run_experiment(spec, quick=..., out=...)`` (or ``await arun_experiment(...)`` where an event
loop already runs, as in a notebook) starts or joins Ray once, then for each point starts a
``Runtime`` on a fresh SQLite file in a unique actor namespace, seeds the point's market,
simulates its workload through the in-process client (or, for ``via = "http"``, through a
gateway deployed for the run, counting its replicas each second), recording its product reads
and writes, audits the invariants, reads the saga counters, checks the recorded history against
the point's catalog consistency (``consistency.py``) and stops the runtime (flush, kill the
actors). Ray is shut down at the end only if this call connected it. The rows go to
``report.write_report``.

Ray and the actors are imported when a run starts, so reading and checking files needs neither.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketplace.consistency import History
from marketplace.sim.experiments.consistency import consistency_columns
from marketplace.sim.experiments.metrics import metrics, row, timeline
from marketplace.sim.experiments.points import Point, expand, point_count
from marketplace.sim.experiments.report import ReportPaths, write_report
from marketplace.sim.experiments.spec import ExperimentSpec, load_spec
from marketplace.sim.loops import OpRecord, RunResult, Target
from marketplace.sim.simulation import build_market, simulate

if TYPE_CHECKING:
    from actors.client import MarketplaceClient
    from marketplace.audit import AuditReport
    from marketplace.config import Settings
    from marketplace.sim.market import SyntheticMarket

DEFAULT_OUT = Path("results")
"""Where results go by default: ``results/<experiment name>/``."""


class ExperimentObserver:
    """Hooks a caller overrides to show progress; each does nothing by default. They run on
    the experiment's event loop and must not block."""

    def point_started(self, point: Point, number: int, total: int) -> None:
        """Run ``number`` of ``total`` (1-based) is starting."""

    def point_phase(self, point: Point, phase: str) -> None:
        """The run moved to ``phase``: starting, seeding, running, auditing or stopping."""

    def point_record(self, point: Point, record: OpRecord) -> None:
        """An operation of the run ended (or was dropped)."""

    def point_finished(self, point: Point, number: int, total: int, row: Mapping[str, Any]) -> None:
        """Run ``number`` of ``total`` finished with ``row``."""


@dataclasses.dataclass(frozen=True)
class PointRun:
    """One run's row, its per-second timeline and its audit report."""

    point: Point
    row: dict[str, Any]
    timeline: list[dict[str, Any]]
    audit: AuditReport


@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    """What ``run_experiment`` did: the spec it ran (quickened under ``quick``), every run's
    row, every run's timeline rows (``point``, ``repeat``, knobs, then ``t`` and the
    ``TIMELINE_METRICS``), the violations of runs whose audit failed (by run), and the files
    written."""

    spec: ExperimentSpec
    quick: bool
    rows: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    audit_failures: dict[str, list[str]]
    paths: ReportPaths

    @property
    def ok(self) -> bool:
        """Whether every run's audit passed."""
        return not self.audit_failures


def run_name(point: Point) -> str:
    """How a run is named in reports: ``point P repeat R: knobs``."""
    return f"point {point.index} repeat {point.repeat}: {point.label()}"


def resolve(spec: ExperimentSpec | str | Path, *, quick: bool) -> ExperimentSpec:
    """``spec`` itself, or the file or built-in it names, quickened under ``quick``."""
    loaded = spec if isinstance(spec, ExperimentSpec) else load_spec(spec)
    return loaded.quickened() if quick else loaded


async def run_point(
    point: Point,
    *,
    workdir: Path,
    namespace: str,
    observer: ExperimentObserver | None = None,
    http_port: int | None = None,
    first: bool = True,
) -> PointRun:
    """Run one point on a fresh runtime (a new SQLite file under ``workdir``, actors in
    ``namespace``) on the Ray this process is connected to, and return its row.

    With ``http_port`` the point goes through HTTP: the gateway is deployed with the point's
    settings on that port, the market is seeded and driven over HTTP, the gateway's running
    replicas are sampled every second (the timeline's ``replicas``), and the gateway is removed
    after the audit. ``first`` says whether Serve has yet to be started on that port.
    """
    from actors.runtime import Runtime

    watch = observer or ExperimentObserver()
    database = workdir / f"point-{point.index}-{point.repeat}.db"
    fixed: dict[str, Any] = {"database_url": f"sqlite:///{database}", "namespace": namespace}
    if http_port is not None:
        fixed |= {"http_host": "127.0.0.1", "http_port": http_port}
    # The point logs in as the admin of the gateway it starts: secrets of its own, kept nowhere.
    settings = point.runtime_settings(**fixed).with_generated_secrets()
    began = time.monotonic()
    watch.point_phase(point, "starting")
    runtime = Runtime(settings)
    client = await runtime.start()
    samples: list[tuple[float, int]] = []
    history = History()  # a fresh database: every product starts at the first version
    try:
        market = build_market(point.config)

        def seen(record: OpRecord) -> None:
            watch.point_record(point, record)

        drive = _Drive(client, runtime.settings, point, "client" if http_port is None else "http")
        if http_port is None:
            result = await _through_client(client, market, point, watch, seen, drive, history)
        else:
            result, samples = await _through_http(
                runtime.settings, market, point, watch, seen, drive, history, first=first
            )
        watch.point_phase(point, "auditing")
        audit = await client.audit()
        stats = await client.order_stats()
    finally:
        watch.point_phase(point, "stopping")
        if http_port is not None:
            from marketplace.sim.experiments import gateway

            await asyncio.to_thread(gateway.remove)
        await runtime.stop()
    measured = metrics(result, point.config.duration)
    read_write = consistency_columns(
        result.records, result.summary.elapsed, history, runtime.settings
    )
    violations = sum(len(check.violations) for check in audit.checks.values())
    extra: dict[str, Any] = {}
    if http_port is not None:
        counts = [count for _, count in samples]
        extra["max_replicas_seen"] = max(counts, default=None)
    entry = row(
        point.index,
        point.repeat,
        point.knobs,
        measured,
        seed=point.config.seed,
        audit_ok=audit.ok,
        audit_violations=violations,
        # The saga's counters (the status_* ones move on as orders ship and are delivered).
        orders_confirmed=stats.get("confirmed", 0),
        orders_cancelled=sum(v for k, v in stats.items() if k.startswith("cancelled_")),
        compensations=stats.get("compensations", 0),
        point_s=round(time.monotonic() - began, 2),
        **drive.fault_columns,
        **read_write,
        **extra,
    )
    # The failure reasons read best last in the CSV: they are the only free text.
    entry["failures"] = entry.pop("failures")
    seconds = []
    for step in timeline(result.records, result.summary.elapsed):
        if http_port is not None:
            from marketplace.sim.experiments.gateway import replicas_at

            step["replicas"] = replicas_at(samples, step["t"])
        seconds.append(row(point.index, point.repeat, point.knobs, step))
    return PointRun(point, entry, seconds, audit)


class _Drive:
    """Runs a point's workload against a target, under the point's fault plan when it names
    one (then waits for its orders to end), and keeps the fault columns of its row."""

    def __init__(
        self, client: MarketplaceClient, settings: Settings, point: Point, via: str
    ) -> None:
        from marketplace.sim.faults.under_load import NO_FAULT_METRICS

        self.client = client
        self.settings = settings
        self.point = point
        self.via = via
        self.fault_columns: dict[str, Any] = dict(NO_FAULT_METRICS)

    async def run(
        self, target: Target, market: SyntheticMarket, seen: Callable[[OpRecord], None]
    ) -> RunResult:
        config = self.point.config
        plan = config.fault_plan
        if plan is None:
            return await simulate(target, market, config, on_record=seen)
        from marketplace.config import Durability
        from marketplace.sim.faults.under_load import (
            fault_metrics,
            lost_orders,
            plan_for_run,
            settle_orders,
            simulate_under_faults,
        )

        drawn, context = plan_for_run(plan, config, self.settings, self.client.directory, self.via)
        run = await simulate_under_faults(target, market, config, drawn, context, on_record=seen)

        async def pending() -> int:
            return (await self.client.order_stats()).get("status_pending", 0)

        settled, _ = await settle_orders(pending)
        self.fault_columns = fault_metrics(run, settled)
        acknowledged = getattr(getattr(target, "deliveries", None), "acknowledged", [])
        if self.settings.durability is Durability.SYNC:
            lost = await lost_orders(self.client.engine, acknowledged)
            self.fault_columns["orders_lost"] = len(lost)
        return run.result


async def _through_client(
    client: MarketplaceClient,
    market: SyntheticMarket,
    point: Point,
    watch: ExperimentObserver,
    seen: Callable[[OpRecord], None],
    drive: _Drive,
    history: History,
) -> RunResult:
    from marketplace.sim.client_target import ClientTarget
    from marketplace.sim.seed import seed_market

    watch.point_phase(point, "seeding")
    manifest = await seed_market(client, market, write=False)
    watch.point_phase(point, "running")
    return await drive.run(ClientTarget(client, manifest, history=history), market, seen)


async def _through_http(
    settings: Settings,
    market: SyntheticMarket,
    point: Point,
    watch: ExperimentObserver,
    seen: Callable[[OpRecord], None],
    drive: _Drive,
    history: History,
    *,
    first: bool,
) -> tuple[RunResult, list[tuple[float, int]]]:
    from marketplace.sim.behaviours import carrier_ids
    from marketplace.sim.experiments import gateway
    from marketplace.sim.http_seed import seed_over_http
    from marketplace.sim.http_target import HttpTarget

    watch.point_phase(point, "starting the gateway")
    url = await asyncio.to_thread(functools.partial(gateway.deploy, settings, first=first))
    watch.point_phase(point, "seeding")
    seeded = await seed_over_http(
        url,
        market,
        carriers=carrier_ids(market, point.config.the_preset.carriers),
        admin_email=settings.admin_email,
        admin_password=_admin_password(settings),
    )
    watch.point_phase(point, "running")
    sampler = gateway.ReplicaSampler()
    async with HttpTarget(seeded, history=history) as target:
        sampler.start()
        try:
            result = await drive.run(target, market, seen)
        finally:
            await sampler.stop()
    return result, sampler.samples


async def arun_experiment(
    spec: ExperimentSpec | str | Path,
    *,
    quick: bool = False,
    out: str | Path | None = None,
    observer: ExperimentObserver | None = None,
) -> ExperimentResult:
    """Run ``spec`` (a spec, a file or a built-in's name) and write its report under ``out``
    (default ``results/<name>``); see the module's docstring. Runs whose audit fails do not stop
    the experiment: they are in ``ExperimentResult.audit_failures``. If a run raises, the rows so
    far are written before the error propagates."""
    from actors.runtime import init_ray

    resolved = resolve(spec, quick=quick)
    points = expand(resolved)
    target = Path(out) if out is not None else DEFAULT_OUT / resolved.name
    watch = observer or ExperimentObserver()
    tag = uuid.uuid4().hex[:8]
    rows: list[dict[str, Any]] = []
    seconds: list[dict[str, Any]] = []
    failures: dict[str, list[str]] = {}
    notes = [
        f"workload: {points[0].config.describe()} (repeat r uses seed + r - 1)",
        f"{point_count(resolved)} point(s) x {resolved.repeats} repeat(s) = {len(points)} run(s)",
    ]
    if resolved.settings:
        shared = ", ".join(f"{k} = {v}" for k, v in resolved.settings.items())
        notes.append(f"settings for every point: {shared}")
    ray_settings = points[0].runtime_settings(namespace=f"exp-{tag}")
    http_port = None
    if resolved.via == "http":
        from marketplace.sim.experiments import gateway

        gateway.prepare_ingress(ray_settings)  # Serve reads it once, before Ray starts
        http_port = gateway.free_port()
    # On the calling thread: ray.init installs signal handlers, which only the main thread may.
    started, connected = init_ray(ray_settings)
    try:
        with tempfile.TemporaryDirectory(prefix="marketplace-experiment-") as workdir:
            for number, point in enumerate(points, start=1):
                watch.point_started(point, number, len(points))
                try:
                    done = await run_point(
                        point,
                        workdir=Path(workdir),
                        namespace=f"exp-{tag}-{point.index}-{point.repeat}",
                        observer=watch,
                        http_port=http_port,
                        first=number == 1,
                    )
                except BaseException as exc:
                    if rows:
                        stopped = f"stopped early at {run_name(point)}: {exc!r}"
                        write_report(
                            resolved,
                            rows,
                            target,
                            quick=quick,
                            audit_failures=failures,
                            notes=[*notes, stopped],
                            timeline=seconds,
                        )
                    raise
                rows.append(done.row)
                seconds.extend(done.timeline)
                if not done.audit.ok:
                    failures[run_name(point)] = [
                        f"{name}: {violation}"
                        for name, check in done.audit.checks.items()
                        for violation in check.violations
                    ] or ["the audit failed without listing a violation"]
                watch.point_finished(point, number, len(points), done.row)
    finally:
        if started or connected:
            import ray

            ray.shutdown()
    paths = write_report(
        resolved,
        rows,
        target,
        quick=quick,
        audit_failures=failures,
        notes=notes,
        timeline=seconds,
    )
    return ExperimentResult(resolved, quick, rows, seconds, failures, paths)


def run_experiment(
    spec: ExperimentSpec | str | Path,
    *,
    quick: bool = False,
    out: str | Path | None = None,
    observer: ExperimentObserver | None = None,
) -> ExperimentResult:
    """``arun_experiment`` for callers without a running event loop (scripts, the CLI)."""
    return asyncio.run(arun_experiment(spec, quick=quick, out=out, observer=observer))


def _admin_password(settings: Settings) -> str:
    credentials = settings.admin_credentials()
    assert credentials is not None  # the point's settings come with generated secrets
    return credentials[1]
