"""The dashboard and the alert rules query what a live gateway exports: after a few requests
and a checkout, GET /metrics declares every ``marketplace_*`` family they use, with samples
for the ones these requests feed, and ``promtool check metrics`` finds nothing to report."""

from __future__ import annotations

import shutil

import httpx
import pytest

from cluster.observability import generate, metric_names, queries
from tests.e2e.conftest import signup
from tests.e2e.support import checkout, create_product

pytestmark = pytest.mark.e2e


async def test_a_live_scrape_has_every_queried_marketplace_metric(http: httpx.AsyncClient) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run tests/ensure_promtool.sh (make test does)")
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    product = await create_product(http, seller, initial_stock=3)
    order = await checkout(http, buyer, [(product["id"], 1)])
    assert order.status_code == 201, order.text
    assert (await http.get("/v1/nope")).status_code == 404

    reply = await http.get("/metrics")
    assert reply.status_code == 200
    scrape = reply.text
    declared = queries.declared_types(scrape)
    used = queries.queried_metrics(queries.committed_queries(generate.DASHBOARD, generate.RULES))
    wanted = {m for m in used if m.exporter == metric_names.Exporter.MARKETPLACE}
    assert wanted == set(metric_names.APP_METRICS)
    missing = {m.name for m in wanted if declared.get(m.name) != m.kind}
    assert not missing, f"not in the scrape (or another type): {missing}"
    # Samples behind the checkout panels and alerts; the relay's family has none without a
    # broker (this session runs none), so only its declaration is checked above.
    samples = [line for line in scrape.splitlines() if not line.startswith("#")]
    for name, labels in (
        (
            metric_names.HTTP_REQUESTS.name,
            {"method": "POST", "route": "/v1/orders", "status": "201"},
        ),
        (metric_names.HTTP_LATENCY.bucket, {"method": "POST", "route": "/v1/orders", "le": "+Inf"}),
        (metric_names.ORDERS.name, {"status": "confirmed"}),
        (metric_names.ORDER_COUNTERS.name, {"counter": "confirmed"}),
    ):
        pairs = [f'{key}="{value}"' for key, value in labels.items()]
        assert any(
            line.startswith(name + "{") and all(pair in line for pair in pairs) for line in samples
        ), (name, labels)

    lints = queries.promtool_check_metrics(promtool, scrape)
    assert [line for line in lints if line not in queries.TOLERATED_METRIC_LINTS] == []
