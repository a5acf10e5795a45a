"""What the actors measure, recorded through Ray's metrics (``ray.util.metrics``).

Each process records its own series; the metrics agent of its node exports them on the node's
metrics port (``ray start --metrics-export-port``) with the ``ray_`` prefix and the process's
``WorkerId`` among the labels. Summed over those labels, one scrape per node gives the
cluster's totals however many actors and replicas there are (``actors.scrape`` does that sum
for ``GET /metrics``). Every series carries the marketplace's namespace as its ``marketplace``
label, so that several marketplaces on one Ray (the test suite's) stay apart (``namespace`` is
the Kubernetes namespace Prometheus adds).

Recording costs about a microsecond (measured in ``bench_gateway``'s metrics figure); outside a
Ray worker, in unit tests, it records nowhere.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ray.util.metrics import Counter, Gauge, Histogram

from marketplace import tracing

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# Seconds: from a fast in-memory call to a saga that waited out a slow payment. (A latency
# histogram's quantiles come from its buckets; its exported _sum is Ray's estimate from them.)
LATENCY_BOUNDARIES: list[float] = [
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
]
# How often an actor publishes its gauges (its calls in flight, the coordinators' counters, the
# relay's lag).
GAUGE_PERIOD_S = 2.0

CALLS_IN_FLIGHT = Gauge(
    "marketplace_actor_calls_in_flight",
    "Calls an actor has received and not answered yet (queued on its locks, its writer or its "
    "peers included), by actor kind (catalog, inventory, orders, ...)",
    tag_keys=("marketplace", "kind"),
)
CALL_SECONDS = Histogram(
    "marketplace_actor_call_seconds",
    "Time an actor took to answer a call, by actor kind and method",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("marketplace", "kind", "method"),
)
# Sizes are counted rather than observed: Ray exports a histogram's sum as the sum of its
# buckets' midpoints, so the mean of a size histogram would be off; the ratio of two counters
# is exact.
BATCHES = Counter(
    "marketplace_actor_batches",
    "Batched Ray calls (or in-process batches) sent, by the kind of actor they went to, and "
    "via: ray (a Ray call) or process (the role lives in the sender's process, colocated)",
    tag_keys=("marketplace", "kind", "via"),
)
BATCHED_CALLS = Counter(
    "marketplace_actor_batched_calls",
    "Calls those batches carried, by the kind of actor they went to",
    tag_keys=("marketplace", "kind"),
)
COMMIT_SECONDS = Histogram(
    "marketplace_writer_commit_seconds",
    "Time of one group commit of an actor's writer, by actor kind",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("marketplace", "kind"),
)
COMMIT_CHANGES = Counter(
    "marketplace_writer_changes",
    "State changes an actor's writer committed, by actor kind (per commit: over the count of "
    "marketplace_writer_commit_seconds)",
    tag_keys=("marketplace", "kind"),
)
SAGA_STEP_SECONDS = Histogram(
    "marketplace_saga_step_seconds",
    "Time of a checkout saga's step at the coordinator: reserve, charge, commit, ship",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("marketplace", "step"),
)
COMPENSATIONS = Counter(
    "marketplace_compensations",
    "Orders a coordinator compensated (reservations released, payment refunded or voided), "
    "by failure reason",
    tag_keys=("marketplace", "reason"),
)
ORDER_COUNTERS = Gauge(
    "marketplace_order_counters",
    "One coordinator's order counters since it started (confirmed, cancelled_<reason>, "
    "compensations, resumed, replayed) and its orders by status (status_<status>); summed "
    "over coordinators they are the marketplace's",
    tag_keys=("marketplace", "counter"),
)
EVENT_RELAY = Gauge(
    "marketplace_event_relay",
    "The outbox relay: lag (unpublished events), published and failed (since it started), "
    "connected (1 when it holds a broker connection)",
    tag_keys=("marketplace", "measure"),
)

ACTOR_RESTARTS = Gauge(
    "marketplace_actor_restarts",
    "Times Ray restarted an actor's process (its own count, as the new process starts), by "
    "actor kind and actor (kind-index): take the max per actor over processes, since a dead "
    "process's last value may linger a while, then sum by kind",
    tag_keys=("marketplace", "kind", "actor"),
)
REPLICATION_LAG_SECONDS = Histogram(
    "marketplace_replication_lag_seconds",
    "Time from a catalog shard's change to its being applied by a read replica, by replica "
    "(replicas-<i>; MARKETPLACE_REPLICATION_DELAY_MS widens it)",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("marketplace", "replica"),
)
DASHBOARD_LAG_SECONDS = Histogram(
    "marketplace_dashboard_lag_seconds",
    "Time from an order's confirmation (its coordinator's clock) to the seller view counting "
    "it on the dashboards (the view's clock)",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("marketplace",),
)
STALE_READS = Counter(
    "marketplace_stale_reads",
    "Products a catalog replica served while it held a newer change of them not yet applied "
    "(an older version than the shard had answered when the read arrived)",
    tag_keys=("marketplace",),
)
SESSION_READS = Counter(
    "marketplace_session_reads",
    "Catalog reads carrying a session token, by outcome: replica (a replica had caught up, "
    "maybe after a short wait), owner (none had: the shard answered)",
    tag_keys=("marketplace", "outcome"),
)

METRICS = (
    CALLS_IN_FLIGHT,
    CALL_SECONDS,
    BATCHES,
    BATCHED_CALLS,
    COMMIT_SECONDS,
    COMMIT_CHANGES,
    SAGA_STEP_SECONDS,
    COMPENSATIONS,
    ORDER_COUNTERS,
    EVENT_RELAY,
    ACTOR_RESTARTS,
    REPLICATION_LAG_SECONDS,
    DASHBOARD_LAG_SECONDS,
    STALE_READS,
    SESSION_READS,
)

# Methods of an actor class that are not calls from others: start-up hooks (and, in
# ``ActorBase``, the wait every call starts with and the gauges' timer).
_NOT_CALLS = frozenset({"load", "started"})
_INTERNAL = _NOT_CALLS | {"loaded", "publish_gauges"}


class ActorMetrics:
    """One actor's metric tags, and the recording it does with them."""

    def __init__(self, namespace: str, kind: str) -> None:
        self.namespace = namespace
        self.kind = kind
        self.in_flight = 0
        self._tags = {"marketplace": namespace, "kind": kind}
        self._method_tags: dict[str, dict[str, str]] = {}

    def call_started(self) -> None:
        """A call arrived (counted here; ``publish_in_flight`` sets the gauge)."""
        self.in_flight += 1

    def call_ended(self, method: str, seconds: float) -> None:
        """A call was answered (or failed) after ``seconds``."""
        self.in_flight -= 1
        tags = self._method_tags.get(method)
        if tags is None:
            tags = self._method_tags[method] = {**self._tags, "method": method}
        CALL_SECONDS.observe(seconds, tags)

    def publish_in_flight(self) -> None:
        """Set the calls-in-flight gauge. Every ``GAUGE_PERIOD_S`` rather than at each call: Ray
        exports a gauge's last value every few seconds anyway, and a record costs about 2 µs
        in a worker."""
        CALLS_IN_FLIGHT.set(self.in_flight, self._tags)

    def restarts(self, actor: str, count: int) -> None:
        """Ray restarted this actor's process ``count`` times before this one."""
        ACTOR_RESTARTS.set(count, {**self._tags, "actor": actor})

    def committed(self, changes: int, seconds: float) -> None:
        """The actor's writer committed ``changes`` in one transaction of ``seconds``."""
        COMMIT_SECONDS.observe(seconds, self._tags)
        COMMIT_CHANGES.inc(changes, self._tags)

    def saga_step(self, step: str, seconds: float) -> None:
        """A saga step took ``seconds``."""
        SAGA_STEP_SECONDS.observe(seconds, {"marketplace": self.namespace, "step": step})

    def compensated(self, reason: str) -> None:
        """An order was compensated because of ``reason``."""
        COMPENSATIONS.inc(1, {"marketplace": self.namespace, "reason": reason})

    def order_counters(self, counters: Mapping[str, int]) -> None:
        """One coordinator's counters, as gauges."""
        for name, value in counters.items():
            ORDER_COUNTERS.set(value, {"marketplace": self.namespace, "counter": name})

    def relay(self, stats: Mapping[str, object]) -> None:
        """The relay's figures, as gauges (``connected`` as 0 or 1)."""
        for name in ("lag", "published", "failed", "connected"):
            value = stats.get(name)
            if isinstance(value, bool | int | float):
                EVENT_RELAY.set(float(value), {"marketplace": self.namespace, "measure": name})

    def replicated(self, replica: str, lags: list[float]) -> None:
        """A replica applied changes this many seconds after its shard made each."""
        tags = {"marketplace": self.namespace, "replica": replica}
        for lag in lags:
            REPLICATION_LAG_SECONDS.observe(lag, tags)

    def stale_reads(self, count: int) -> None:
        """A replica served ``count`` products it knew a newer change of."""
        STALE_READS.inc(count, {"marketplace": self.namespace})

    def dashboard_lags(self, lags: list[float]) -> None:
        """The seller view counted confirmed orders this many seconds after each confirmation."""
        tags = {"marketplace": self.namespace}
        for lag in lags:
            DASHBOARD_LAG_SECONDS.observe(lag, tags)


class NoMetrics(ActorMetrics):
    """What an actor records with ``MARKETPLACE_METRICS=false``: nothing (calls are still
    counted in flight, in memory, which costs an addition)."""

    def call_ended(self, method: str, seconds: float) -> None:
        self.in_flight -= 1

    def publish_in_flight(self) -> None:
        pass

    def restarts(self, actor: str, count: int) -> None:
        pass

    def committed(self, changes: int, seconds: float) -> None:
        pass

    def saga_step(self, step: str, seconds: float) -> None:
        pass

    def compensated(self, reason: str) -> None:
        pass

    def order_counters(self, counters: Mapping[str, int]) -> None:
        pass

    def relay(self, stats: Mapping[str, object]) -> None:
        pass

    def replicated(self, replica: str, lags: list[float]) -> None:
        pass

    def stale_reads(self, count: int) -> None:
        pass

    def dashboard_lags(self, lags: list[float]) -> None:
        pass


def actor_metrics(namespace: str, kind: str, enabled: bool) -> ActorMetrics:
    """An actor's recording: real, or ``NoMetrics`` when metrics are off."""
    return ActorMetrics(namespace, kind) if enabled else NoMetrics(namespace, kind)


def batch_sent(namespace: str, kind: str, over_ray: bool, calls: int) -> None:
    """A batch of ``calls`` left for an actor of ``kind``, in a Ray call or in-process."""
    tags = {"marketplace": namespace, "kind": kind}
    BATCHES.inc(1, {**tags, "via": "ray" if over_ray else "process"})
    BATCHED_CALLS.inc(calls, tags)


def session_read(namespace: str, outcome: str) -> None:
    """A catalog read carrying a session token ended so (``SESSION_READS``)."""
    SESSION_READS.inc(1, {"marketplace": namespace, "outcome": outcome})


def timed_calls(cls: type) -> None:
    """Wrap the public coroutine methods ``cls`` itself defines so that each call counts in its
    actor's ``metrics`` (an ``ActorMetrics``): in flight while it runs, then its latency; and,
    when the call carries a trace context (``marketplace.tracing.TRACE_KW``), runs in a span
    of its own under its caller's.

    Only the class's own methods: what every actor inherits (``ready``, ``run_batch``, ...) is
    plumbing, and ``run_batch``'s calls are counted one by one as they reach these methods.
    """
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or name in _NOT_CALLS or not inspect.iscoroutinefunction(method):
            continue
        setattr(cls, name, _timed(name, method))


def untraced_calls(cls: type) -> None:
    """Let the public coroutine methods ``cls`` defines take (and drop) a trace context, so
    that a traced caller may call any actor method: the plumbing that ``timed_calls`` leaves
    alone (``ActorBase``'s own, a cell's)."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or name in _INTERNAL or not inspect.iscoroutinefunction(method):
            continue
        setattr(cls, name, _dropping_trace(method))


def takes_trace(method: object) -> bool:
    """Whether ``method`` was wrapped to take a trace context (a test checks every actor's)."""
    return bool(getattr(method, "_takes_trace", False))


def _timed(name: str, method: F) -> F:
    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        parent = kwargs.pop(tracing.TRACE_KW, None)
        metrics: ActorMetrics = self.metrics
        metrics.call_started()
        started = time.perf_counter()
        try:
            if parent is None:
                return await method(self, *args, **kwargs)
            with tracing.handling(parent, metrics.kind, name):
                return await method(self, *args, **kwargs)
        finally:
            metrics.call_ended(name, time.perf_counter() - started)

    return _taking_trace(call, method)


def _dropping_trace(method: F) -> F:
    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop(tracing.TRACE_KW, None)
        return await method(self, *args, **kwargs)

    return _taking_trace(call, method)


def _taking_trace(wrapper: Callable[..., Any], method: F) -> F:
    """``wrapper``, marked, with ``method``'s signature plus the keyword-only trace argument:
    Ray checks a call's arguments against the signature before it sends the call. Ray reads
    the signature of the innermost ``__wrapped__`` function, so the wrapper keeps none."""
    signature = inspect.signature(method)
    params = list(signature.parameters.values())
    extra = inspect.Parameter(tracing.TRACE_KW, inspect.Parameter.KEYWORD_ONLY, default=None)
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    params.insert(len(params) if at is None else at, extra)
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper._takes_trace = True  # type: ignore[attr-defined]
    del wrapper.__wrapped__  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


async def publish_every(period_s: float, publish: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``publish`` every ``period_s`` for as long as the actor lives; a failure is logged
    once until publishing works again (the database may be down for a while)."""
    failing = False
    while True:
        try:
            await publish()
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("publishing %s failed (retrying every %.0f s): %r", what, period_s, exc)
            failing = True
        await asyncio.sleep(period_s)
