"""Metrics that add up: the marketplace's figures are recorded through Ray's metrics, exported by
every Ray node per process, and summed (by Prometheus from the node exports, by GET /metrics
for people without one). Requests sent through two gateway replicas are counted exactly once
in one scrape; and every family the dashboard and the alert rules query is in a live scrape,
with samples, and ``promtool check metrics`` finds nothing to report."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors import scrape
from cluster.observability import generate, metric_names, queries
from tests.e2e.conftest import signup
from tests.e2e.support import checkout, create_product, eventually, scrape_with

pytestmark = pytest.mark.e2e

HEALTH = {"method": "GET", "route": "/v1/health", "status": "200"}


def _requests(texts: list[str], marketplace: str, labels: dict[str, str]) -> dict[str, float]:
    """The request counter with ``labels`` in raw node exports, by the process (``WorkerId``)
    that recorded it: what Prometheus stores, one series per replica."""
    by_worker: dict[str, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(scrape.marketplace_lines(text)):
            for sample in family.samples:
                if sample.name != metric_names.HTTP_REQUESTS.name:
                    continue
                if sample.labels.get("marketplace") != marketplace:
                    continue
                if all(sample.labels.get(key) == value for key, value in labels.items()):
                    worker = sample.labels["WorkerId"]
                    by_worker[worker] = by_worker.get(worker, 0.0) + sample.value
    return by_worker


async def _node_exports() -> list[str]:
    texts, failed = await scrape.fetch(scrape.node_exports())
    assert not failed, failed
    return texts


def _gateway_total(text: str, labels: dict[str, str]) -> float:
    """The request counter with ``labels`` in GET /metrics (already summed)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric_names.HTTP_REQUESTS.name and all(
                sample.labels.get(key) == value for key, value in labels.items()
            ):
                return float(sample.value)
    return 0.0


async def test_requests_through_two_replicas_add_up_in_one_scrape(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    marketplace = served["settings"].namespace
    assert served["settings"].gateway_min_replicas >= 2

    async def counted() -> dict[str, float]:
        return _requests(await _node_exports(), marketplace, HEALTH)

    async def twice() -> tuple[dict[str, float], dict[str, float]]:
        first = await counted()
        await asyncio.sleep(1.5)  # longer than the suite's export interval (tests/conftest.py)
        return first, await counted()

    # Earlier tests' requests may still be on their way to the exports: start from a count
    # that stays put.
    _, before = await eventually(twice, lambda pair: pair[0] == pair[1])
    total = sum(before.values())
    sent = 300
    for wave in range(6):  # concurrent waves, so that both replicas answer some
        replies = await asyncio.gather(*(http.get("/v1/health") for _ in range(sent // 6)))
        assert all(reply.status_code == 200 for reply in replies), wave

    after = await eventually(counted, lambda workers: sum(workers.values()) >= total + sent)
    await asyncio.sleep(1.5)  # and nothing more arrives
    after = await counted()
    assert sum(after.values()) == total + sent, after
    grown = [worker for worker, count in after.items() if count > before.get(worker, 0.0)]
    assert len(grown) >= 2, f"one replica answered every request: {after}"
    # GET /metrics, from whichever replica answers it, has the same total.
    labels = {"marketplace": marketplace, **HEALTH}
    text = await eventually(
        lambda: _metrics(http), lambda text: _gateway_total(text, labels) >= total + sent
    )
    assert _gateway_total(text, labels) == total + sent


async def _metrics(http: httpx.AsyncClient) -> str:
    reply = await http.get("/metrics")
    assert reply.status_code == 200, reply.text
    return reply.text


async def test_a_live_scrape_has_every_queried_marketplace_metric(http: httpx.AsyncClient) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run tests/ensure_promtool.sh (make test does)")
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    product = await create_product(http, seller, initial_stock=3)
    order = await checkout(http, buyer, [(product["id"], 1)])
    assert order.status_code == 201, order.text
    refused = await checkout(http, buyer, [(product["id"], 5)])  # out of stock: compensated
    assert refused.status_code == 201 and refused.json()["status"] == "cancelled", refused.text
    assert (await http.get("/v1/nope")).status_code == 404

    used = queries.queried_metrics(queries.committed_queries(generate.DASHBOARD, generate.RULES))
    wanted = {m for m in used if m.exporter == metric_names.Exporter.MARKETPLACE}
    assert wanted == set(metric_names.APP_METRICS)
    # The relay runs only with a broker, which this session has not: its family is checked live
    # in tests/integration/test_events.py.
    wanted.discard(metric_names.EVENT_RELAY)
    # The catalog's read replicas' families likewise: this session's marketplace has none (the
    # default); tests/integration/test_catalog_replicas.py checks them live.
    wanted -= set(metric_names.REPLICA_METRICS)
    # Samples behind the panels and alerts, each family with at least one.
    samples = [
        f"{metric_names.HTTP_REQUESTS.name}{{",
        'method="POST",route="/v1/orders",status="201"}',
        f"{metric_names.ORDERS.name}{{",
        'reason="out_of_stock"',
        'step="reserve"}',
        'step="charge"}',
        'counter="confirmed"',
        'kind="orders"',
        *(f"\n{m.series()[0]}{{" for m in wanted),
    ]
    scrape_text = await scrape_with(http, *samples)
    declared = queries.declared_types(scrape_text)
    missing = {m.name for m in wanted if declared.get(m.name) != m.kind}
    assert not missing, f"not in the scrape (or another type): {missing}"
    lints = queries.promtool_check_metrics(promtool, scrape_text)
    assert [line for line in lints if line not in queries.TOLERATED_METRIC_LINTS] == []


async def test_top_shows_the_traffic_of_its_interval(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    from typer.testing import CliRunner

    from marketplace.cli import app

    stop = asyncio.Event()

    async def traffic() -> int:
        sent = 0
        while not stop.is_set():
            assert (await http.get("/v1/products?limit=1")).status_code == 200
            sent += 1
            await asyncio.sleep(0.01)
        return sent

    sending = asyncio.ensure_future(traffic())
    try:
        run = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["top", "--once", "--url", served["url"], "--interval", "4"],
            env={"COLUMNS": "160"},
        )
    finally:
        stop.set()
    assert await sending > 0
    assert run.exit_code == 0, run.output
    routes = [line for line in run.output.splitlines() if "GET /v1/products " in line]
    assert routes, run.output
    assert float(routes[0].split("│")[2]) > 0  # requests per second over the interval
    for heading in ("Checkouts", "Order counters", "Actors", "Saga steps", "Writers"):
        assert heading in run.output
    # Serve's healthy replicas per deployment pass through GET /metrics: the session's
    # marketplace runs two gateways. (Polled: Serve's controller sets the gauge at its health
    # checks, and with the tests' 1 s report interval Ray keeps a gauge's value only 2 s.)
    await scrape_with(
        http,
        'ray_serve_deployment_replica_healthy{application="marketplace",deployment="Gateway"} 2.0',
    )
    # Every actor kind with its restarts (a whole number, however many a test caused).
    orders = [line for line in run.output.splitlines() if line.startswith("│ orders ")]
    assert orders and float(orders[0].split("│")[6]).is_integer(), run.output
