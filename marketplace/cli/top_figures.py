"""What ``marketplace top`` shows, computed from two scrapes of ``GET /metrics``.

Rates are the growth of a counter between the scrapes over the time between them, and latency
percentiles are interpolated in the growth of a histogram's buckets, as Prometheus'
``rate`` and ``histogram_quantile`` do: a figure is about the last interval, not since start.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, ...]

P = "ray_marketplace_"
REQUESTS = P + "http_requests_total"
LATENCY = P + "http_request_seconds_bucket"
ORDERS = P + "orders_total"
ORDER_COUNTERS = P + "order_counters"
IN_FLIGHT = P + "actor_calls_in_flight"
CALLS = P + "actor_call_seconds_count"
CALL_LATENCY = P + "actor_call_seconds_bucket"
BATCHES = P + "actor_batches_total"
BATCHED_CALLS = P + "actor_batched_calls_total"
STEPS = P + "saga_step_seconds_bucket"
COMMITS = P + "writer_commit_seconds_count"
COMMIT_LATENCY = P + "writer_commit_seconds_bucket"
CHANGES = P + "writer_changes_total"
COMPENSATIONS = P + "compensations_total"
RELAY = P + "event_relay"
RESTARTS = P + "actor_restarts"
REPLICAS = "ray_serve_deployment_replica_healthy"


@dataclass(frozen=True)
class Scrape:
    """One ``GET /metrics``: every sample by name and labels, and when it was taken."""

    taken_at: float
    samples: dict[str, dict[Labels, float]]

    @classmethod
    def parse(cls, text: str, taken_at: float) -> Scrape:
        """Read a Prometheus text exposition."""
        samples: dict[str, dict[Labels, float]] = defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
        return cls(taken_at, dict(samples))

    def series(self, name: str) -> dict[Labels, float]:
        """The samples of ``name`` (none: empty)."""
        return self.samples.get(name, {})


def read_scrape(base_url: str, timeout_s: float = 10.0) -> Scrape | None:
    """``GET <base_url>/metrics`` parsed now, or None when it cannot be read (no answer, an
    answer other than 200: metrics off, not a marketplace)."""
    try:
        reply = httpx.get(f"{base_url}/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if reply.status_code != 200:
        return None
    return Scrape.parse(reply.text, time.time())


def _key(labels: Labels, by: Key) -> Key:
    found = dict(labels)
    return tuple(found.get(name, "") for name in by)


def gauge(scrape: Scrape, name: str, by: Key) -> dict[Key, float]:
    """The latest value of a gauge, summed by the labels ``by``."""
    out: dict[Key, float] = defaultdict(float)
    for labels, value in scrape.series(name).items():
        out[_key(labels, by)] += value
    return dict(out)


def growth(
    before: Scrape, after: Scrape, name: str, by: Key, *, le: bool = False
) -> dict[Key, float]:
    """How much a counter grew between the scrapes, summed by ``by`` (and by ``le`` for a
    histogram's buckets). A series that shrank was reset (its process restarted): its growth is
    its new value, as Prometheus counts it."""
    out: dict[Key, float] = defaultdict(float)
    earlier = before.series(name)
    keys = (*by, "le") if le else by
    for labels, value in after.series(name).items():
        previous = earlier.get(labels, 0.0)
        out[_key(labels, keys)] += value - previous if value >= previous else value
    return dict(out)


def rates(before: Scrape, after: Scrape, name: str, by: Key) -> dict[Key, float]:
    """Per second, the growth of a counter by ``by``."""
    seconds = max(after.taken_at - before.taken_at, 1e-9)
    return {key: grown / seconds for key, grown in growth(before, after, name, by).items()}


def quantiles(before: Scrape, after: Scrape, bucket: str, by: Key, q: float) -> dict[Key, float]:
    """The ``q`` quantile of what a histogram observed between the scrapes, by ``by``
    (groups that observed nothing are left out)."""
    grouped: dict[Key, list[tuple[float, float]]] = defaultdict(list)
    for key, count in growth(before, after, bucket, by, le=True).items():
        grouped[key[:-1]].append((float(key[-1]), count))
    out = {}
    for key, buckets in grouped.items():
        value = bucket_quantile(q, sorted(buckets))
        if value is not None:
            out[key] = value
    return out


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative ``(upper bound, count)`` buckets in ascending
    order, ``+Inf`` last: linear within the bucket the rank falls in; in the ``+Inf`` bucket,
    the highest finite bound. None when nothing was observed."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class Figures:
    """Everything ``top`` shows, one interval's worth."""

    seconds: float
    # (method, route) -> (requests/s, 5xx/s, p50 s, p99 s)
    routes: dict[Key, tuple[float, float, float | None, float | None]] = field(default_factory=dict)
    # (status, reason) -> checkouts/s
    checkouts: dict[Key, float] = field(default_factory=dict)
    # counter -> value (summed over coordinators)
    order_counters: dict[str, float] = field(default_factory=dict)
    # kind -> (in flight, calls/s, p99 s, calls per batch sent to it, restarts since start)
    actors: dict[str, tuple[float, float, float | None, float | None, float]] = field(
        default_factory=dict
    )
    # (application, deployment) -> healthy replicas
    replicas: dict[Key, float] = field(default_factory=dict)
    # step -> (p50 s, p99 s)
    steps: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    # kind -> (commits/s, changes per commit, p99 s)
    writers: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)
    compensations: dict[str, float] = field(default_factory=dict)
    relay: dict[str, float] = field(default_factory=dict)


def figures(before: Scrape, after: Scrape) -> Figures:
    """The figures of the interval between two scrapes."""
    out = Figures(seconds=after.taken_at - before.taken_at)
    route = ("method", "route")
    requests = rates(before, after, REQUESTS, route)
    errors: dict[Key, float] = defaultdict(float)
    for key, rate in rates(before, after, REQUESTS, (*route, "status")).items():
        if key[2].startswith("5"):
            errors[key[:2]] += rate
    p50 = quantiles(before, after, LATENCY, route, 0.5)
    p99 = quantiles(before, after, LATENCY, route, 0.99)
    for key, rate in sorted(requests.items(), key=lambda item: -item[1]):
        if rate > 0:
            out.routes[key] = (rate, errors.get(key, 0.0), p50.get(key), p99.get(key))
    out.checkouts = {k: v for k, v in rates(before, after, ORDERS, ("status", "reason")).items()}
    out.order_counters = {
        k[0]: v for k, v in sorted(gauge(after, ORDER_COUNTERS, ("counter",)).items())
    }

    kind = ("kind",)
    in_flight = gauge(after, IN_FLIGHT, kind)
    calls = rates(before, after, CALLS, kind)
    call_p99 = quantiles(before, after, CALL_LATENCY, kind, 0.99)
    batches = growth(before, after, BATCHES, kind)
    batched = growth(before, after, BATCHED_CALLS, kind)
    # Per actor the highest count over its processes (GET /metrics takes it), summed by kind.
    restarts = gauge(after, RESTARTS, kind)
    for key in sorted(set(in_flight) | set(calls) | set(batches) | set(restarts)):
        per_batch = batched.get(key, 0.0) / batches[key] if batches.get(key) else None
        out.actors[key[0]] = (
            in_flight.get(key, 0.0),
            calls.get(key, 0.0),
            call_p99.get(key),
            per_batch,
            restarts.get(key, 0.0),
        )
    out.replicas = dict(sorted(gauge(after, REPLICAS, ("application", "deployment")).items()))

    step = ("step",)
    step_p50 = quantiles(before, after, STEPS, step, 0.5)
    step_p99 = quantiles(before, after, STEPS, step, 0.99)
    for key in sorted(set(step_p50) | set(step_p99), key=_saga_order):
        out.steps[key[0]] = (step_p50.get(key), step_p99.get(key))

    commits = growth(before, after, COMMITS, kind)
    changes = growth(before, after, CHANGES, kind)
    commit_p99 = quantiles(before, after, COMMIT_LATENCY, kind, 0.99)
    for key, count in sorted(commits.items()):
        if count:
            out.writers[key[0]] = (
                count / max(out.seconds, 1e-9),
                changes.get(key, 0.0) / count,
                commit_p99.get(key),
            )
    out.compensations = {
        k[0]: v for k, v in rates(before, after, COMPENSATIONS, ("reason",)).items() if v
    }
    out.relay = {k[0]: v for k, v in gauge(after, RELAY, ("measure",)).items()}
    return out


_STEPS = ("reserve", "charge", "commit", "ship")


def _saga_order(key: Key) -> tuple[int, str]:
    return (_STEPS.index(key[0]) if key[0] in _STEPS else len(_STEPS), key[0])
