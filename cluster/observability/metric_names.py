"""Every metric name the dashboard and the alert rules query, in one place.

The marketplace's own metrics are recorded through Ray's metrics (``ray.util.metrics``) by the
gateway (``serve_app/metrics.py``) and the actors (``actors/metrics.py``); a unit test checks that
the names and types here are the ones they define. Every Ray node exports them on its metrics
port, ``ray_`` before each name (``APP_PREFIX``) and ``_total`` after a counter's, one series per
process: queries sum them. Ray's and kube-state-metrics' names are the ones their exporters
publish (Ray's own Grafana dashboards query the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# What Ray's exporter puts before the names the marketplace records.
APP_PREFIX = "ray_"


class Kind(StrEnum):
    """A Prometheus metric type, as a ``# TYPE`` line names it."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Exporter(StrEnum):
    """Who publishes a metric."""

    MARKETPLACE = "marketplace"  # recorded by the marketplace, exported by every Ray node
    RAY = "ray"  # Ray's own, on the same metrics port (:8080 in the pods)
    KUBE_STATE_METRICS = "kube-state-metrics"


@dataclass(frozen=True)
class Metric:
    """One metric family: its name as queried, its type and its exporter."""

    name: str
    kind: Kind
    exporter: Exporter

    @property
    def bucket(self) -> str:
        """The ``_bucket`` series of a histogram (what ``histogram_quantile`` reads)."""
        if self.kind is not Kind.HISTOGRAM:
            raise TypeError(f"{self.name} is a {self.kind}, not a histogram")
        return f"{self.name}_bucket"

    def series(self) -> tuple[str, ...]:
        """The names of the series this family exposes (a histogram's three suffixes)."""
        if self.kind is Kind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)

    def __str__(self) -> str:
        return self.name


def _app(name: str, kind: Kind) -> Metric:
    return Metric(APP_PREFIX + name, kind, Exporter.MARKETPLACE)


# The gateway (serve_app/metrics.py); every marketplace series also has a label namespace.
# Labels: method, route (the route template), status.
HTTP_REQUESTS = _app("marketplace_http_requests_total", Kind.COUNTER)
# Labels: method, route.
HTTP_LATENCY = _app("marketplace_http_request_seconds", Kind.HISTOGRAM)
# Checkouts answered, labels: status, reason.
ORDERS = _app("marketplace_orders_total", Kind.COUNTER)
# Checkout answers by their prices, label outcome (current, stale_cart, price_changed).
CHECKOUT_PRICES = _app("marketplace_checkout_prices_total", Kind.COUNTER)

# The actors (actors/metrics.py). Labels: kind (the role: catalog, inventory, orders, ...).
ACTOR_CALLS_IN_FLIGHT = _app("marketplace_actor_calls_in_flight", Kind.GAUGE)
# Labels: kind, method.
ACTOR_CALL_LATENCY = _app("marketplace_actor_call_seconds", Kind.HISTOGRAM)
# Batched Ray calls sent and the calls they carried, label kind (the kind called); batches
# also via (ray, or process: an in-process batch to a role of the same colocated cell).
ACTOR_BATCHES = _app("marketplace_actor_batches_total", Kind.COUNTER)
ACTOR_BATCHED_CALLS = _app("marketplace_actor_batched_calls_total", Kind.COUNTER)
# An actor's writer: one group commit's time, and the changes committed, label kind.
WRITER_COMMIT_LATENCY = _app("marketplace_writer_commit_seconds", Kind.HISTOGRAM)
WRITER_CHANGES = _app("marketplace_writer_changes_total", Kind.COUNTER)
# The coordinators' saga, label step (reserve, charge, commit, ship).
SAGA_STEP_LATENCY = _app("marketplace_saga_step_seconds", Kind.HISTOGRAM)
# Compensated orders, label reason.
COMPENSATIONS = _app("marketplace_compensations_total", Kind.COUNTER)
# Each coordinator's counters, label counter (confirmed, status_pending, ...).
ORDER_COUNTERS = _app("marketplace_order_counters", Kind.GAUGE)
# The outbox relay, label measure (lag, published, failed, connected).
EVENT_RELAY = _app("marketplace_event_relay", Kind.GAUGE)
# Restarts of each actor's process, labels kind and actor (kind-index): max per actor.
ACTOR_RESTARTS = _app("marketplace_actor_restarts", Kind.GAUGE)
# Catalog read replicas: lag from a shard's change to a replica applying it, label replica;
# products served while a newer change waited at the replica; session reads by outcome
# (replica, owner).
REPLICATION_LAG = _app("marketplace_replication_lag_seconds", Kind.HISTOGRAM)
# The seller view: order confirmed -> counted on the dashboards (two processes' clocks).
DASHBOARD_LAG = _app("marketplace_dashboard_lag_seconds", Kind.HISTOGRAM)
STALE_READS = _app("marketplace_stale_reads_total", Kind.COUNTER)
SESSION_READS = _app("marketplace_session_reads_total", Kind.COUNTER)

# Ray: actors by State (ALIVE, RESTARTING, DEAD, ...), Name (the class) and Source ("gcs"
# counts every actor once; "executor" counts the live ones per node). RAY_METRIC_CARDINALITY_LEVEL
# =low drops Name: the queries then see every class as one.
RAY_ACTORS = Metric("ray_actors", Kind.GAUGE, Exporter.RAY)
# Ray Serve: healthy replicas by application and deployment.
SERVE_REPLICAS_HEALTHY = Metric("ray_serve_deployment_replica_healthy", Kind.GAUGE, Exporter.RAY)

# kube-state-metrics: container restarts by namespace, pod and container.
POD_RESTARTS = Metric(
    "kube_pod_container_status_restarts_total", Kind.COUNTER, Exporter.KUBE_STATE_METRICS
)

# Recorded only where the catalog has read replicas (MARKETPLACE_CATALOG_REPLICAS > 0).
REPLICA_METRICS: tuple[Metric, ...] = (REPLICATION_LAG, STALE_READS, SESSION_READS)

APP_METRICS: tuple[Metric, ...] = (
    HTTP_REQUESTS,
    HTTP_LATENCY,
    ORDERS,
    CHECKOUT_PRICES,
    ACTOR_CALLS_IN_FLIGHT,
    ACTOR_CALL_LATENCY,
    ACTOR_BATCHES,
    ACTOR_BATCHED_CALLS,
    WRITER_COMMIT_LATENCY,
    WRITER_CHANGES,
    SAGA_STEP_LATENCY,
    COMPENSATIONS,
    ORDER_COUNTERS,
    EVENT_RELAY,
    ACTOR_RESTARTS,
    REPLICATION_LAG,
    DASHBOARD_LAG,
    STALE_READS,
    SESSION_READS,
)
ALL_METRICS: tuple[Metric, ...] = (*APP_METRICS, RAY_ACTORS, SERVE_REPLICAS_HEALTHY, POD_RESTARTS)


def known_series() -> dict[str, Metric]:
    """Every series name a query may use -> the family it belongs to."""
    return {series: metric for metric in ALL_METRICS for series in metric.series()}
