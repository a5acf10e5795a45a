"""The gateway answers over real HTTP: health, problem details, a checkout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import ray

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, signup
from tests.e2e.support import scrape_with

pytestmark = pytest.mark.e2e

HAPROXY_LISTENER_SETTINGS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")
ADDRESS = {"name": "Bo", "street": "1 Main St", "city": "Town", "zip": "12345", "country": "US"}


async def test_health_and_unknown_route(http: httpx.AsyncClient) -> None:
    assert (await http.get("/v1/health")).json() == {"status": "ok"}
    missing = await http.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404


async def test_no_access_log_lines_by_default(http: httpx.AsyncClient) -> None:
    # Serve writes a replica's access log to its file in the session's logs/serve folder, one
    # line per request (buffer of one record), unless the deployment's logging_config says no.
    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"

    def health_lines() -> int:
        return sum(
            path.read_text(errors="replace").count("GET /v1/health 200")
            for path in logs.glob("replica_*Gateway*.log")
        )

    assert any(logs.glob("replica_*Gateway*.log")), f"no gateway replica log in {logs}"
    before = health_lines()
    for _ in range(20):
        assert (await http.get("/v1/health")).status_code == 200
    assert health_lines() == before


async def test_checkout_over_http(http: httpx.AsyncClient) -> None:
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    created = await http.post(
        "/v1/products",
        json={"name": "Blue mug", "category": "kitchen", "price_cents": 1250, "initial_stock": 2},
        headers=seller["headers"],
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    body = {
        "items": [{"product_id": product_id, "quantity": 2}],
        "payment": {"card_token": "tok_visa"},
        "shipping_address": ADDRESS,
    }
    headers = {**buyer["headers"], "Idempotency-Key": "mug-1"}
    first = await http.post("/v1/orders", json=body, headers=headers)
    again = await http.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert first.json()["status"] == "confirmed"
    assert again.json()["id"] == first.json()["id"]
    reply = await http.get(f"/v1/products/{product_id}/stock")
    assert reply.status_code == 200, reply.text
    stock = reply.json()
    assert stock["available"] == 0 and stock["reserved"] == 0

    admin = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    audit = await http.get("/v1/admin/audit", headers={"Authorization": f"Bearer {admin}"})
    assert audit.status_code == 200 and audit.json()["ok"], audit.text
    await scrape_with(
        http,
        'ray_marketplace_http_requests_total{marketplace="',
        'method="POST",route="/v1/orders",status="201"}',
        'ray_marketplace_order_counters{counter="confirmed"',
    )


async def test_haproxys_stats_and_metrics_listen_on_the_gateways_host_only(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    # Serve's template binds both on every interface; serve_app.haproxy_bind rebinds them.
    assert (await http.get("/v1/health")).status_code == 200  # HAProxy is up
    ports = {int(os.environ[name]) for name in HAPROXY_LISTENER_SETTINGS}
    listening = [
        c
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
    ]
    assert {c.laddr.port for c in listening} == ports, listening
    assert {c.laddr.ip for c in listening} == {served["settings"].http_host}, listening


async def test_the_proxy_haproxy_falls_back_to_listens_on_a_port_of_its_own(
    http: httpx.AsyncClient,
) -> None:
    # Serve's default, 8500, is bound with SO_REUSEPORT: a second Serve on the machine shares
    # it, and the kernel then hands that Serve some of the requests HAProxy falls back with
    # (serve_app.serving.HAPROXY_PORT_SETTINGS).
    assert (await http.get("/v1/health")).status_code == 200
    port = int(os.environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
    assert port != 8500
    listening = [
        c
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]
    assert listening, f"nothing listens on the fallback proxy's port {port}"
