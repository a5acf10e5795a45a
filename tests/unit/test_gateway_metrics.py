"""The gateway's Prometheus exposition carries the business and relay figures it is given."""

from __future__ import annotations

import pytest

from serve_app import metrics

pytestmark = pytest.mark.unit


def test_relay_and_order_counters_are_exposed() -> None:
    metrics.record_relay(
        {
            "lag": 7,
            "published": 120,
            "failed": 2,
            "connected": True,
            "last_error": "ignored: not a number",
        }
    )
    metrics.record_order_counters({"confirmed": 5, "cancelled_out_of_stock": 3})
    metrics.record_checkout("cancelled", "out_of_stock")
    text = metrics.exposition().decode()
    assert 'marketplace_event_relay{measure="lag"} 7.0' in text
    assert 'marketplace_event_relay{measure="published"} 120.0' in text
    assert 'marketplace_event_relay{measure="failed"} 2.0' in text
    assert 'marketplace_event_relay{measure="connected"} 1.0' in text
    assert "last_error" not in text
    assert 'marketplace_order_counters{counter="cancelled_out_of_stock"} 3.0' in text
    assert 'marketplace_orders_total{reason="out_of_stock",status="cancelled"} 1.0' in text


def test_requests_are_labelled_by_route_template_and_fixed_pages_by_path() -> None:
    class Route:
        path = "/v1/products/{product_id}"

    api_route = {"path": "/v1/products/prd_1", "route": Route(), "endpoint": object()}
    assert metrics.route_label(api_route) == "/v1/products/{product_id}"
    docs_page = {"path": "/openapi.json", "endpoint": object()}  # FastAPI's own, a plain route
    assert metrics.route_label(docs_page) == "/openapi.json"
    assert metrics.route_label({"path": "/v1/nothing-here"}) == "unmatched"
