"""Prometheus metrics of one gateway replica, and the ASGI middleware that records them."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "marketplace_http_requests_total",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "marketplace_http_request_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ORDERS = Counter(
    "marketplace_orders_total",
    "Checkouts answered by this replica, by order status and failure reason",
    ["status", "reason"],
    registry=REGISTRY,
)
BUSINESS = Gauge(
    "marketplace_order_counters",
    "Order counters summed over the coordinators (confirmed, cancelled_<reason>, "
    "compensations, resumed, replayed, status_<status>)",
    ["counter"],
    registry=REGISTRY,
)
RELAY = Gauge(
    "marketplace_event_relay",
    "The outbox relay: lag (unpublished events), published and failed (since it started), "
    "connected (1 when it holds a broker connection)",
    ["measure"],
    registry=REGISTRY,
)

# The gateway module is pickled by value by Serve; it reaches these objects only through
# functions of this (importable) module, so it never updates a copy.


def record_checkout(status: str, failure_reason: str | None) -> None:
    """Count a checkout answer."""
    ORDERS.labels(status, failure_reason or "").inc()


def record_order_counters(counters: dict[str, int]) -> None:
    """Publish the coordinators' counters."""
    for name, value in counters.items():
        BUSINESS.labels(name).set(value)


def record_relay(stats: dict[str, object]) -> None:
    """Publish the relay's figures."""
    for name in ("lag", "published", "failed", "connected"):
        value = stats.get(name)
        if isinstance(value, bool | int | float):
            RELAY.labels(name).set(float(value))


def exposition() -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(REGISTRY)


def route_label(scope: Scope) -> str:
    """The template of the route a request matched, or ``unmatched``.

    FastAPI's routes leave themselves in ``scope["route"]``. Its own pages (``/openapi.json``,
    ``/docs``, ``/redoc``) are plain Starlette routes that leave only their endpoint; their paths
    are fixed, so the path is their template.
    """
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    if scope.get("endpoint") is not None:
        return str(scope["path"])
    return "unmatched"


class RequestMetrics:
    """Count requests and time them, labelled by the route template (not the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = route_label(scope)
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
