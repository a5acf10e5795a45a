"""The alert rules for the marketplace's SLOs, and the promtool unit tests that pin them.

Written here rather than by hand in YAML so that every metric name comes from
``metric_names``; ``python -m cluster.observability.generate`` writes ``alerts.rules.yaml`` (a
plain Prometheus rules file, for promtool and for a Prometheus without the operator),
``alerts.test.yaml`` (``promtool test rules``) and the prod overlay's PrometheusRule.

Thresholds follow the SLOs of ``load/scenarios/steady.toml``: under 1 % errors, checkout p99
under 2.5 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cluster.observability.metric_names import (
    EVENT_RELAY,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    ORDER_COUNTERS,
    POD_RESTARTS,
    RAY_ACTORS,
)

GROUP = "marketplace.slo"
RULE_FILE = "alerts.rules.yaml"
NAMESPACE = "marketplace"  # the overlays' namespace, on the test series as Kubernetes puts it
CHECKOUT = 'method="POST",route="/v1/orders"'
ERROR_RATIO = 0.01
CHECKOUT_P99_S = 2.5
RELAY_LAG_EVENTS = 1000
PENDING_ORDERS = 25
RESTARTS = 3  # restarts (or minutes seen restarting) within 15 minutes that make a loop


@dataclass(frozen=True)
class Alert:
    """One alerting rule."""

    name: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str | None = None

    def rule(self) -> dict[str, Any]:
        """The rule as a Prometheus rules file writes it."""
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


ALERTS: tuple[Alert, ...] = (
    Alert(
        "MarketplaceHighErrorRate",
        f'sum by (namespace) (rate({HTTP_REQUESTS}{{status=~"5.."}}[5m]))'
        f" / sum by (namespace) (rate({HTTP_REQUESTS}[5m])) > {ERROR_RATIO}",
        "critical",
        "More than 1% of HTTP requests answer 5xx",
        "The gateway answered 5xx to more than 1% of requests over 5 minutes, for 5 minutes "
        "(SLO: under 1%). Look at the dashboard's errors by route; 503s mean actors or the "
        "database were unavailable (GET /v1/ready).",
        "5m",
    ),
    Alert(
        "MarketplaceCheckoutSlow",
        f"histogram_quantile(0.99, sum by (namespace, le) "
        f"(rate({HTTP_LATENCY.bucket}{{{CHECKOUT}}}[5m]))) > {CHECKOUT_P99_S}",
        "critical",
        "Checkout p99 latency above 2.5 s",
        "POST /v1/orders took longer than 2.5 s for 1% of checkouts over 5 minutes, for 10 "
        "minutes (SLO: p99 under 2.5 s). A slow card network, a saturated order coordinator or "
        "the database write path are the usual causes.",
        "10m",
    ),
    Alert(
        "MarketplaceRelayLagging",
        f'max by (namespace) ({EVENT_RELAY}{{measure="lag"}}) > {RELAY_LAG_EVENTS}',
        "warning",
        "More than 1000 events wait in the outbox",
        "The event relay has more than 1000 unpublished events, for 10 minutes: RabbitMQ is "
        "slow or refusing them (see relay failed on the dashboard). Nothing is lost; outside "
        "systems see events late.",
        "10m",
    ),
    Alert(
        "MarketplaceRelayDisconnected",
        f'max by (namespace) ({EVENT_RELAY}{{measure="connected"}}) == 0',
        "warning",
        "The event relay has no RabbitMQ connection",
        "The relay has held no broker connection for 5 minutes: events stay in the outbox "
        "until it reconnects. Check the RabbitmqCluster and its pods.",
        "5m",
    ),
    Alert(
        "MarketplaceOrdersPending",
        f'sum by (namespace) ({ORDER_COUNTERS}{{counter="status_pending"}}) > {PENDING_ORDERS}',
        "warning",
        "More than 25 orders pending for 15 minutes",
        "The order coordinators hold more than 25 pending orders, for 15 minutes: checkouts "
        "are not finishing (payment or shipment calls failing or slow). Buyers were told "
        "pending; their orders complete once the saga resumes.",
        "15m",
    ),
    Alert(
        "RayActorRestartLoop",
        f"count_over_time((sum by (namespace, Name) "
        f'({RAY_ACTORS}{{Source="gcs",State="RESTARTING"}}) > 0)[15m:1m]) >= {RESTARTS}',
        "warning",
        "A Ray actor class keeps restarting",
        "Actors of this class were seen restarting in 3 or more of the last 15 minutes: an "
        "actor that crashes while loading its state restarts in a loop. Its logs are in the "
        "Ray dashboard (Actors).",
    ),
    Alert(
        "RayPodRestartLoop",
        f'increase({POD_RESTARTS}{{container=~"ray-head|ray-worker"}}[15m]) >= {RESTARTS}',
        "warning",
        "A Ray pod's container restarted 3 times in 15 minutes",
        "A Ray head or worker container restarted 3 or more times in 15 minutes "
        "(kube-state-metrics): out of memory or a failing start. kubectl describe pod; "
        "kubectl logs --previous.",
    ),
)


def rules_document() -> dict[str, Any]:
    """The Prometheus rules file: one group with every alert."""
    return {"groups": [{"name": GROUP, "rules": [alert.rule() for alert in ALERTS]}]}


def prometheus_rule() -> dict[str, Any]:
    """The same groups as a prometheus-operator PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "marketplace-alerts",
            "labels": {"app.kubernetes.io/name": "marketplace"},
        },
        "spec": rules_document(),
    }


# -- promtool unit tests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Input series, then for one alert the times it must fire (with these labels) or not."""

    alert: str
    what: str
    series: dict[str, str]
    fires_at: tuple[str, ...] = ()
    silent_at: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def _ns(selector: str) -> str:
    """``name{labels}`` with the namespace label the overlays' pods carry."""
    name, _, labels = selector.partition("{")
    inner = labels.rstrip("}")
    return f'{name}{{namespace="{NAMESPACE}"{"," + inner if inner else ""}}}'


def _get(status: str) -> str:
    return _ns(f'{HTTP_REQUESTS}{{method="GET",route="/v1/products",status="{status}"}}')


def _checkout_bucket(le: str, route: str = "/v1/orders", method: str = "POST") -> str:
    return _ns(f'{HTTP_LATENCY.bucket}{{method="{method}",route="{route}",le="{le}"}}')


def _relay(measure: str, pod: str) -> str:
    return _ns(f'{EVENT_RELAY}{{measure="{measure}",pod="{pod}"}}')


def _pending(worker: str) -> str:
    return _ns(f'{ORDER_COUNTERS}{{counter="status_pending",WorkerId="{worker}"}}')


def _actors(state: str, name: str = "InventoryPartition") -> str:
    return _ns(f'{RAY_ACTORS}{{Source="gcs",State="{state}",Name="{name}"}}')


def _restarts(container: str) -> str:
    return _ns(
        f'{POD_RESTARTS}{{pod="marketplace-raycluster-x-{container}",container="{container}"}}'
    )


# 600 requests a minute; 5xx among them as given.
CASES: tuple[Case, ...] = (
    Case(
        "MarketplaceHighErrorRate",
        "5% of requests fail",
        {_get("200"): "0+570x30", _get("503"): "0+30x30"},
        fires_at=("15m",),
        silent_at=("4m",),  # not yet 5 minutes
    ),
    Case(
        "MarketplaceHighErrorRate",
        "0.5% of requests fail",
        {_get("200"): "0+597x30", _get("500"): "0+3x30"},
        silent_at=("15m",),
    ),
    Case(
        "MarketplaceHighErrorRate",
        "4xx are not errors",
        {_get("200"): "0+300x30", _get("404"): "0+300x30"},
        silent_at=("15m",),
    ),
    Case(
        "MarketplaceCheckoutSlow",
        "most checkouts take 2.5 to 5 s",
        {
            _checkout_bucket("1"): "0+10x30",
            _checkout_bucket("2.5"): "0+10x30",
            _checkout_bucket("5"): "0+100x30",
            _checkout_bucket("+Inf"): "0+100x30",
        },
        fires_at=("20m",),
        silent_at=("8m",),
    ),
    Case(
        "MarketplaceCheckoutSlow",
        "checkouts fast, another route slow",
        {
            _checkout_bucket("0.5"): "0+100x30",
            _checkout_bucket("+Inf"): "0+100x30",
            _checkout_bucket("0.5", "/v1/products", "GET"): "0+0x30",
            _checkout_bucket("+Inf", "/v1/products", "GET"): "0+100x30",
        },
        silent_at=("20m",),
    ),
    Case(
        "MarketplaceRelayLagging",
        "5000 events wait; a restarted relay's old series lingers",
        {_relay("lag", "a"): "5000x30", _relay("lag", "b"): "4990x30"},
        fires_at=("15m",),
        silent_at=("5m",),
    ),
    Case(
        "MarketplaceRelayLagging",
        "a short backlog drains",
        {_relay("lag", "a"): "0x5 8000x5 10x20"},
        silent_at=("8m", "20m"),
    ),
    Case(
        "MarketplaceRelayDisconnected",
        "no connection",
        {_relay("connected", "a"): "1x5 0x25"},
        fires_at=("15m",),
        silent_at=("8m",),
    ),
    Case(
        "MarketplaceRelayDisconnected",
        "connected",
        {_relay("connected", "a"): "1x30"},
        silent_at=("15m",),
    ),
    Case(
        "MarketplaceOrdersPending",
        "30 orders stuck, 20 at one coordinator and 10 at the other",
        {_pending("coordinator-a"): "20x30", _pending("coordinator-b"): "10x30"},
        fires_at=("20m",),
        silent_at=("10m",),
    ),
    Case(
        "MarketplaceOrdersPending",
        "a burst of pending orders that completes",
        {_pending("coordinator-a"): "0x5 200x5 2x20"},
        silent_at=("9m", "25m"),
    ),
    Case(
        "RayActorRestartLoop",
        "restarting every third minute",
        {
            _actors("RESTARTING"): "1 0 0 1 0 0 1 0 0 1 0 0 1 0 0 1 0 0 1 0 0",
            _actors("ALIVE"): "1x20",
        },
        fires_at=("10m",),
        silent_at=("4m",),
        labels={"Name": "InventoryPartition"},
    ),
    Case(
        "RayActorRestartLoop",
        "one restart",
        {_actors("RESTARTING"): "0x5 1 0x20", _actors("ALIVE"): "1x5 0 1x20"},
        silent_at=("10m", "20m"),
    ),
    Case(
        "RayPodRestartLoop",
        "a worker container restarts every 3 minutes",
        {_restarts("ray-worker"): "0 0 0 1 1 1 2 2 2 3 3 3 4 4 4 5 5 5"},
        fires_at=("15m",),
        silent_at=("5m",),
        labels={"pod": "marketplace-raycluster-x-ray-worker", "container": "ray-worker"},
    ),
    Case(
        "RayPodRestartLoop",
        "one restart, and another container's loop",
        {_restarts("ray-head"): "0x5 1x20", _restarts("postgres"): "0+1x20"},
        silent_at=("15m",),
    ),
)


def _alert(name: str) -> Alert:
    return next(alert for alert in ALERTS if alert.name == name)


def tests_document() -> dict[str, Any]:
    """``promtool test rules`` input: every case, each alone, evaluated every minute."""
    tests: list[dict[str, Any]] = []
    for case in CASES:
        alert = _alert(case.alert)
        expected: dict[str, Any] = {
            "exp_labels": {"severity": alert.severity, "namespace": NAMESPACE, **case.labels},
            "exp_annotations": {"summary": alert.summary, "description": alert.description},
        }
        checks: list[dict[str, Any]] = [
            {"eval_time": at, "alertname": alert.name, "exp_alerts": [expected]}
            for at in case.fires_at
        ]
        checks += [
            {"eval_time": at, "alertname": alert.name, "exp_alerts": []} for at in case.silent_at
        ]
        tests.append(
            {
                "name": f"{alert.name}: {case.what}",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": sorted(checks, key=lambda c: _minutes(str(c["eval_time"]))),
            }
        )
    return {"rule_files": [RULE_FILE], "evaluation_interval": "1m", "tests": tests}


def _minutes(duration: str) -> int:
    return int(duration.removesuffix("m"))
