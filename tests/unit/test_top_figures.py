"""``marketplace top``'s figures from two scrapes of GET /metrics: rates over the interval,
quantiles interpolated in the buckets' growth as Prometheus' histogram_quantile does, counter
resets counted as Prometheus counts them, and the tables rendered from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from marketplace.cli.top import render
from marketplace.cli.top_figures import Scrape, bucket_quantile, figures

pytestmark = pytest.mark.unit

M = 'marketplace="m"'


def scrape(taken_at: float, requests: float, slow: float, fast: float, **extra: float) -> Scrape:
    """A summed scrape: POST /v1/orders answered ``requests`` times (``fast`` of them within
    10 ms, ``slow`` more within 1 s), one of them a 503, plus actor and saga figures."""
    orders = 'method="POST",route="/v1/orders"'
    requests_ = "ray_marketplace_http_requests_total"
    latency = "ray_marketplace_http_request_seconds"
    lines = [
        f"# TYPE {requests_} counter",
        f'{requests_}{{{M},{orders},status="201"}} {requests - 1}',
        f'{requests_}{{{M},{orders},status="503"}} 1',
        f"# TYPE {latency} histogram",
        f'{latency}_bucket{{{M},{orders},le="0.01"}} {fast}',
        f'{latency}_bucket{{{M},{orders},le="1.0"}} {fast + slow}',
        f'{latency}_bucket{{{M},{orders},le="+Inf"}} {fast + slow}',
        f"{latency}_count{{{M},{orders}}} {fast + slow}",
        f"{latency}_sum{{{M},{orders}}} 1",
        "# TYPE ray_marketplace_actor_calls_in_flight gauge",
        f'ray_marketplace_actor_calls_in_flight{{{M},kind="orders"}} {extra.get("in_flight", 0)}',
        "# TYPE ray_marketplace_actor_batches_total counter",
        f'ray_marketplace_actor_batches_total{{{M},kind="inventory"}} {extra.get("batches", 0)}',
        "# TYPE ray_marketplace_actor_batched_calls_total counter",
        f'ray_marketplace_actor_batched_calls_total{{{M},kind="inventory"}} '
        f"{extra.get('batched', 0)}",
        "# TYPE ray_marketplace_order_counters gauge",
        f'ray_marketplace_order_counters{{counter="confirmed",{M}}} {extra.get("confirmed", 0)}',
        # GET /metrics has taken the highest count per actor over processes already.
        "# TYPE ray_marketplace_actor_restarts gauge",
        f'ray_marketplace_actor_restarts{{actor="inventory-0",kind="inventory",{M}}} '
        f"{extra.get('restarts', 0)}",
        f'ray_marketplace_actor_restarts{{actor="inventory-1",kind="inventory",{M}}} 1',
        "# TYPE ray_serve_deployment_replica_healthy gauge",
        'ray_serve_deployment_replica_healthy{application="marketplace",deployment="Gateway"} '
        f"{extra.get('gateways', 1)}",
    ]
    return Scrape.parse("\n".join(lines) + "\n", taken_at)


def test_bucket_quantiles_interpolate_as_prometheus_does() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1)
    assert bucket_quantile(0.75, buckets) == pytest.approx(0.15)
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.05)  # from 0 to the first bound
    assert bucket_quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1  # in +Inf: the bound
    assert bucket_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_rates_and_quantiles_are_over_the_interval_only() -> None:
    before = scrape(100.0, requests=1000, slow=500, fast=500, batches=10, batched=30)
    after = scrape(
        102.0,
        requests=1040,
        slow=500,
        fast=540,
        in_flight=3,
        batches=20,
        batched=70,
        confirmed=7,
        restarts=2,
        gateways=3,
    )
    shown = figures(before, after)
    rate, errors, p50, p99 = shown.routes[("POST", "/v1/orders")]
    assert rate == pytest.approx(20.0) and errors == 0.0
    # The 40 requests of the interval were all fast; since start half were slow.
    assert p50 is not None and p99 is not None and p99 <= 0.01
    in_flight, calls, call_p99, _, restarts = shown.actors["orders"]
    assert (in_flight, calls, call_p99, restarts) == (3.0, 0.0, None, 0.0)
    assert shown.actors["inventory"][3] == pytest.approx(4.0)  # 40 calls in 10 batches
    assert shown.actors["inventory"][4] == 3.0  # inventory-0 restarted twice, inventory-1 once
    assert shown.replicas == {("marketplace", "Gateway"): 3.0}
    assert shown.order_counters == {"confirmed": 7.0}


def test_a_counter_that_was_reset_counts_its_new_value() -> None:
    before = scrape(0.0, requests=1000, slow=0, fast=1000)
    after = scrape(1.0, requests=11, slow=0, fast=11)  # the replica restarted
    rate, _, _, _ = figures(before, after).routes[("POST", "/v1/orders")]
    assert rate == pytest.approx(10.0)  # 10 of the 201s; the 503 series stayed at 1


def test_the_view_renders_every_table() -> None:
    before = scrape(0.0, requests=10, slow=0, fast=10)
    after = scrape(2.0, requests=30, slow=0, fast=30, confirmed=20)
    console = Console(width=120, record=True)
    console.print(render(figures(before, after), "http://x"))
    text = console.export_text()
    for heading in (
        "Requests",
        "Checkouts",
        "Order counters",
        "Actors",
        "Saga steps",
        "Writers",
        "Serve replicas",
    ):
        assert heading in text
    assert "marketplace Gateway" in text and "restarts" in text
    assert "POST /v1/orders" in text and "10.0" in text
    assert "no broker configured" in text


def test_top_without_a_gateway_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from marketplace.cli import app

    monkeypatch.chdir(tmp_path)  # no .marketplace/runtime.json here
    run = CliRunner().invoke(app, ["top", "--once"])
    assert run.exit_code == 1
    assert "marketplace up" in run.output and "--url" in run.output
