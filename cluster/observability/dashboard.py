"""The Grafana dashboard, built with grafanalib from the names in ``metric_names``.

``python -m cluster.observability.generate`` writes it to ``marketplace-dashboard.json``, which
Grafana imports as is and the overlays ship as a ConfigMap for Grafana's dashboard sidecar.
Every panel queries ``${datasource}``, a variable listing the Prometheus data sources, so the
dashboard works with whichever Prometheus scrapes the PodMonitor.
"""

from __future__ import annotations

import json
from typing import Any

from grafanalib import core as g  # type: ignore[import-untyped]
from grafanalib._gen import DashboardEncoder  # type: ignore[import-untyped]

from cluster.observability.metric_names import (
    ACTOR_BATCHED_CALLS,
    ACTOR_BATCHES,
    ACTOR_CALL_LATENCY,
    ACTOR_CALLS_IN_FLIGHT,
    ACTOR_RESTARTS,
    CHECKOUT_PRICES,
    COMPENSATIONS,
    DASHBOARD_LAG,
    EVENT_RELAY,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    ORDER_COUNTERS,
    ORDERS,
    RAY_ACTORS,
    REPLICATION_LAG,
    SAGA_STEP_LATENCY,
    SERVE_REPLICAS_HEALTHY,
    SESSION_READS,
    STALE_READS,
    WRITER_CHANGES,
    WRITER_COMMIT_LATENCY,
)

UID = "marketplace-overview"
TITLE = "Marketplace"
DATASOURCE = "${datasource}"
RATE = "$__rate_interval"  # Grafana's: at least four scrape intervals
WIDTH = 24  # Grafana's grid is 24 columns wide
HEIGHT = 8


def _target(expr: str, legend: str, ref: str) -> g.Target:
    return g.Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def _panel(title: str, description: str, unit: str, *targets: tuple[str, str]) -> g.TimeSeries:
    refs = "ABCDEFGH"
    return g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[_target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(targets)],
        unit=unit,
        legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"],
        # grafanalib caps a panel at 100 points; None lets Grafana fit them to the panel's width.
        maxDataPoints=None,
    )


def _quantile(q: float) -> tuple[str, str]:
    expr = (
        f"histogram_quantile({q}, sum by (method, route, le) (rate({HTTP_LATENCY.bucket}[{RATE}])))"
    )
    return expr, f"p{round(q * 100)} {{{{method}}}} {{{{route}}}}"


def _step_quantile(q: float) -> tuple[str, str]:
    expr = f"histogram_quantile({q}, sum by (step, le) (rate({SAGA_STEP_LATENCY.bucket}[{RATE}])))"
    return expr, "{{step}}"


def _ratio(numerator: str, denominator: str, label: str) -> tuple[str, str]:
    """One counter's rate over another's, by ``label`` (a mean size per event)."""
    return (
        f"sum by ({label}) (rate({numerator}[{RATE}]))"
        f" / sum by ({label}) (rate({denominator}[{RATE}]))",
        f"{{{{{label}}}}}",
    )


# (row title, panels); each row's panels share its width.
ROWS: tuple[tuple[str, tuple[g.TimeSeries, ...]], ...] = (
    (
        "Traffic and errors",
        (
            _panel(
                "Requests per route",
                "Requests per second answered by the gateway, by route template.",
                "reqps",
                (
                    f"sum by (method, route) (rate({HTTP_REQUESTS}[{RATE}]))",
                    "{{method}} {{route}}",
                ),
            ),
            _panel(
                "Errors per route",
                "4xx and 5xx answers per second, by route and status.",
                "reqps",
                (
                    f"sum by (method, route, status) "
                    f'(rate({HTTP_REQUESTS}{{status=~"[45].."}}[{RATE}]))',
                    "{{status}} {{method}} {{route}}",
                ),
            ),
            _panel(
                "5xx ratio",
                "Share of requests answered 5xx (alert MarketplaceHighErrorRate above 1%).",
                "percentunit",
                (
                    f'sum(rate({HTTP_REQUESTS}{{status=~"5.."}}[{RATE}]))'
                    f" / sum(rate({HTTP_REQUESTS}[{RATE}]))",
                    "5xx",
                ),
            ),
        ),
    ),
    (
        "Latency",
        (
            _panel("p50 per route", "Median request latency by route.", "s", _quantile(0.5)),
            _panel("p95 per route", "95th percentile latency by route.", "s", _quantile(0.95)),
            _panel(
                "p99 per route",
                "99th percentile latency by route (checkout SLO: 2.5 s).",
                "s",
                _quantile(0.99),
            ),
        ),
    ),
    (
        "Orders",
        (
            _panel(
                "Checkouts by outcome",
                "Checkout answers per second by order status and failure reason.",
                "ops",
                (
                    f"sum by (status, reason) (rate({ORDERS}[{RATE}]))",
                    "{{status}} {{reason}}",
                ),
            ),
            _panel(
                "Order counters",
                "The coordinators' counters since they started, summed over coordinators: "
                "outcomes, compensations, resumed and replayed sagas, orders by status.",
                "short",
                (f"sum by (counter) ({ORDER_COUNTERS})", "{{counter}}"),
            ),
            _panel(
                "Checkout prices",
                "Checkout answers per second by how the prices charged compare with those the "
                "buyer saw: current, stale_cart (a line charged at a price its cart did not "
                "show; the order records both) and price_changed (refused with 409).",
                "ops",
                (f"sum by (outcome) (rate({CHECKOUT_PRICES}[{RATE}]))", "{{outcome}}"),
            ),
            _panel(
                "Dashboard lag p50 / p99",
                "Time from an order's confirmation to the seller view counting it on the "
                "sellers' dashboards (the coordinator's and the view's clocks).",
                "s",
                (
                    f"histogram_quantile(0.5, sum by (le) (rate({DASHBOARD_LAG.bucket}[{RATE}])))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) (rate({DASHBOARD_LAG.bucket}[{RATE}])))",
                    "p99",
                ),
            ),
        ),
    ),
    (
        "Checkout saga",
        (
            _panel(
                "Saga step p50",
                "Median time of each step at the coordinator: reserve (inventory), charge "
                "(payments), commit (inventory) and ship (shipments) run as calls to actors.",
                "s",
                _step_quantile(0.5),
            ),
            _panel(
                "Saga step p99",
                "99th percentile time of each saga step.",
                "s",
                _step_quantile(0.99),
            ),
            _panel(
                "Compensations by reason",
                "Orders compensated per second (reservations released, payment refunded or "
                "voided), by failure reason.",
                "ops",
                (f"sum by (reason) (rate({COMPENSATIONS}[{RATE}]))", "{{reason}}"),
            ),
        ),
    ),
    (
        "Actors",
        (
            _panel(
                "Calls in flight by kind",
                "Calls the actors of each kind have received and not answered: their queue, "
                "including calls waiting on locks, the writer or other actors.",
                "short",
                (f"sum by (kind) ({ACTOR_CALLS_IN_FLIGHT})", "{{kind}}"),
            ),
            _panel(
                "Call p99 by kind",
                "99th percentile time an actor of each kind took to answer a call.",
                "s",
                (
                    f"histogram_quantile(0.99, sum by (kind, le) "
                    f"(rate({ACTOR_CALL_LATENCY.bucket}[{RATE}])))",
                    "{{kind}}",
                ),
            ),
            _panel(
                "Calls per batch by kind called",
                "Mean calls carried by one batched Ray call to an actor of each kind: above 1, "
                "batching saves Ray calls under load.",
                "short",
                _ratio(ACTOR_BATCHED_CALLS.name, ACTOR_BATCHES.name, "kind"),
            ),
        ),
    ),
    (
        "Writers",
        (
            _panel(
                "Commits per second by kind",
                "Group commits of each actor kind's writers per second (in the colocated "
                "topology a cell's roles share one writer: kind cell).",
                "ops",
                (
                    f"sum by (kind) (rate({WRITER_COMMIT_LATENCY.name}_count[{RATE}]))",
                    "{{kind}}",
                ),
            ),
            _panel(
                "Commit p99 by kind",
                "99th percentile time of one group commit (waiting for SQLite's write lock "
                "included).",
                "s",
                (
                    f"histogram_quantile(0.99, sum by (kind, le) "
                    f"(rate({WRITER_COMMIT_LATENCY.bucket}[{RATE}])))",
                    "{{kind}}",
                ),
            ),
            _panel(
                "Changes per commit by kind",
                "Mean state changes one transaction carried: group commit at work.",
                "short",
                _ratio(WRITER_CHANGES.name, f"{WRITER_COMMIT_LATENCY.name}_count", "kind"),
            ),
        ),
    ),
    (
        "Event relay",
        (
            _panel(
                "Relay lag",
                "Events in the outbox not yet published (alert above 1000 for 10 minutes).",
                "short",
                (f'max({EVENT_RELAY}{{measure="lag"}})', "lag"),
            ),
            _panel(
                "Relay published and failed",
                "Events published and publish failures per second.",
                "ops",
                (
                    f"max by (measure) "
                    f'(rate({EVENT_RELAY}{{measure=~"published|failed"}}[{RATE}]))',
                    "{{measure}}",
                ),
            ),
            _panel(
                "Relay connected",
                "1 while the relay holds a RabbitMQ connection.",
                "short",
                (f'max({EVENT_RELAY}{{measure="connected"}})', "connected"),
            ),
        ),
    ),
    (
        "Catalog replicas",
        (
            _panel(
                "Replication lag by replica",
                "p99 time from a catalog shard's change to a read replica applying it "
                "(MARKETPLACE_REPLICATION_DELAY_MS adds to it).",
                "s",
                (
                    f"histogram_quantile(0.99, sum by (replica, le) "
                    f"(rate({REPLICATION_LAG.bucket}[{RATE}])))",
                    "{{replica}}",
                ),
            ),
            _panel(
                "Stale reads served",
                "Products per second a replica served while it held a newer change of them "
                "(eventual and session reads without a token).",
                "ops",
                (f"sum(rate({STALE_READS}[{RATE}]))", "stale"),
            ),
            _panel(
                "Session reads by outcome",
                "Reads carrying a session token: answered by a replica that had caught up, or "
                "by the shard when none had.",
                "ops",
                (f"sum by (outcome) (rate({SESSION_READS}[{RATE}]))", "{{outcome}}"),
            ),
        ),
    ),
    (
        "Ray",
        (
            _panel(
                "Healthy replicas per deployment",
                "Ray Serve's healthy replicas of each deployment (Gateway, Auth).",
                "short",
                (
                    f"sum by (application, deployment) ({SERVE_REPLICAS_HEALTHY})",
                    "{{application}} {{deployment}}",
                ),
            ),
            _panel(
                "Actors by state",
                "Every Ray actor by lifecycle state, as the GCS counts them.",
                "short",
                (f'sum by (State) ({RAY_ACTORS}{{Source="gcs"}})', "{{State}}"),
            ),
            _panel(
                "Actor restarts by kind",
                "How many times Ray restarted the processes of each actor kind (every restart "
                "reloads the actor's state from the store).",
                "short",
                (
                    f"sum by (kind) (max by (kind, actor) ({ACTOR_RESTARTS}))",
                    "{{kind}}",
                ),
            ),
            _panel(
                "Restarting actors by class",
                "Actors restarting now, by class (alert RayActorRestartLoop when it repeats).",
                "short",
                (
                    f'sum by (Name) ({RAY_ACTORS}{{Source="gcs",State="RESTARTING"}})',
                    "{{Name}}",
                ),
            ),
        ),
    ),
)


def _layout() -> list[g.Panel]:
    panels: list[g.Panel] = []
    y = 0
    for title, row in ROWS:
        panels.append(g.RowPanel(title=title, gridPos=g.GridPos(h=1, w=WIDTH, x=0, y=y)))
        y += 1
        width = WIDTH // len(row)
        for i, panel in enumerate(row):
            panel.gridPos = g.GridPos(h=HEIGHT, w=width, x=i * width, y=y)
            panels.append(panel)
        y += HEIGHT
    return panels


def build() -> g.Dashboard:
    """The dashboard object."""
    datasource = g.Template(
        name="datasource",
        label="Prometheus",
        type="datasource",
        query="prometheus",
        default="Prometheus",
    )
    return g.Dashboard(
        title=TITLE,
        uid=UID,
        description="The marketplace's gateway, orders, event relay and Ray (cluster/README.md).",
        tags=["marketplace", "ray"],
        timezone="browser",
        refresh="30s",
        time=g.Time("now-1h", "now"),
        templating=g.Templating(list=[datasource]),
        panels=_layout(),
    ).auto_panel_ids()


def as_json() -> str:
    """The dashboard as Grafana imports it (stable key order, a final newline)."""
    data: dict[str, Any] = json.loads(json.dumps(build().to_json_data(), cls=DashboardEncoder))
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
