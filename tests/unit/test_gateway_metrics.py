"""Requests are counted under their route template, and ``actors.scrape`` sums a node's export
over the processes that recorded it, for one marketplace."""

from __future__ import annotations

import pytest

from actors import metrics as actor_metrics
from actors import scrape
from serve_app import metrics
from tests.unit.ray_exports import ray_export

pytestmark = pytest.mark.unit


def test_requests_are_labelled_by_route_template_and_fixed_pages_by_path() -> None:
    class Route:
        path = "/v1/products/{product_id}"

    api_route = {"path": "/v1/products/prd_1", "route": Route(), "endpoint": object()}
    assert metrics.route_label(api_route) == "/v1/products/{product_id}"
    docs_page = {"path": "/openapi.json", "endpoint": object()}  # FastAPI's own, a plain route
    assert metrics.route_label(docs_page) == "/openapi.json"
    assert metrics.route_label({"path": "/v1/nothing-here"}) == "unmatched"


def _tags(marketplace: str, **tags: str) -> dict[str, str]:
    return {"marketplace": marketplace, **tags}


def test_series_are_summed_over_processes_for_one_marketplace_only() -> None:
    get = _tags("mine", method="GET", route="/v1/products", status="200")
    post = _tags("mine", method="POST", route="/v1/orders", status="201")
    first = ray_export(
        [
            (metrics.REQUESTS, "w1", get),
            (metrics.REQUESTS, "w1", post),
            (metrics.REQUESTS, "w1", {**get, "marketplace": "other"}),
            (actor_metrics.ORDER_COUNTERS, "w3", _tags("mine", counter="confirmed")),
        ],
        value=3,
    )
    second = ray_export(  # another node: a second replica and a second coordinator
        [
            (metrics.REQUESTS, "w2", get),
            (actor_metrics.ORDER_COUNTERS, "w4", _tags("mine", counter="confirmed")),
            (metrics.LATENCY, "w2", _tags("mine", method="GET", route="/v1/products")),
        ],
        value=0.02,
    )
    text = scrape.exposition(scrape.summed([first, second], "mine")).decode()
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    get_labels = 'marketplace="mine",method="GET",route="/v1/products",status="200"'
    assert float(samples[f"ray_marketplace_http_requests_total{{{get_labels}}}"]) == 3.02
    post_labels = 'marketplace="mine",method="POST",route="/v1/orders",status="201"'
    assert float(samples[f"ray_marketplace_http_requests_total{{{post_labels}}}"]) == 3.0
    counters = 'ray_marketplace_order_counters{counter="confirmed",marketplace="mine"}'
    assert float(samples[counters]) == 3.02
    assert "other" not in text and "WorkerId" not in text and "otel_" not in text
    assert "# TYPE ray_marketplace_http_requests_total counter" in text
    # Buckets in ascending order, +Inf last, and each at most the next.
    buckets = [
        (line.split('le="')[1].split('"')[0], float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("ray_marketplace_http_request_seconds_bucket")
    ]
    bounds = [float(le) for le, _ in buckets]
    assert bounds == sorted(bounds) and buckets[-1][0] == "+Inf"
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and counts[0] == 0.0 and counts[-1] == 1.0


def test_nothing_recorded_for_a_marketplace_is_an_empty_scrape() -> None:
    other = _tags("other", method="GET", route="/", status="200")
    export = ray_export([(metrics.REQUESTS, "w1", other)])
    assert scrape.summed([export], "mine") == []
    assert scrape.exposition([]) == b""


def test_restarts_take_the_highest_count_per_actor_and_serve_replicas_pass_through() -> None:
    """A restarted actor's new process reports the higher count while the dead one's older
    value may linger: the scrape keeps the highest per actor. Serve's healthy replicas (its
    controller's gauge, not the marketplace's) come through by application and deployment."""
    inventory = _tags("mine", kind="inventory", actor="inventory-0")
    dead = ray_export([(actor_metrics.ACTOR_RESTARTS, "w1", inventory)], value=1)
    alive = ray_export([(actor_metrics.ACTOR_RESTARTS, "w2", inventory)], value=2)
    serve = (
        "# HELP ray_serve_deployment_replica_healthy Tracks healthy replicas.\n"
        "# TYPE ray_serve_deployment_replica_healthy gauge\n"
        'ray_serve_deployment_replica_healthy{Component="core_worker",WorkerId="c",'
        'application="marketplace",deployment="Gateway"} 2.0\n'
    )
    text = scrape.exposition(scrape.summed([dead, alive, serve], "mine")).decode()
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    restarts = (
        'ray_marketplace_actor_restarts{actor="inventory-0",kind="inventory",marketplace="mine"}'
    )
    assert float(samples[restarts]) == 2.0
    replicas = (
        'ray_serve_deployment_replica_healthy{application="marketplace",deployment="Gateway"}'
    )
    assert float(samples[replicas]) == 2.0
