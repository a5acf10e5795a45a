"""What a gateway replica measures (requests, latency, checkouts), and the ASGI middleware that
records it.

Recorded through Ray's metrics (``ray.util.metrics``) like the actors' (``actors.metrics``): each
replica's series are exported by its node's metrics agent, and summed over replicas they are the
marketplace's (``actors.scrape``), however many replicas answer.
"""

from __future__ import annotations

import time

from ray.util.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "marketplace_http_requests",
    "HTTP requests by method, route template and status",
    tag_keys=("marketplace", "method", "route", "status"),
)
LATENCY = Histogram(
    "marketplace_http_request_seconds",
    "HTTP request latency by method and route template",
    boundaries=[0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    tag_keys=("marketplace", "method", "route"),
)
ORDERS = Counter(
    "marketplace_orders",
    "Checkouts answered, by order status and failure reason",
    tag_keys=("marketplace", "status", "reason"),
)
CHECKOUT_PRICES = Counter(
    "marketplace_checkout_prices",
    "Checkout answers by how the prices charged compare with those the buyer saw: current (as "
    "shown, or no cart price to compare), stale_cart (a line charged at a price its cart line "
    "did not show; the order records both), price_changed (refused with 409: the expected "
    "total no longer held)",
    tag_keys=("marketplace", "outcome"),
)
METRICS = (REQUESTS, LATENCY, ORDERS, CHECKOUT_PRICES)


class GatewayMetrics:
    """One replica's recording, under its marketplace's ``namespace``."""

    def __init__(self, namespace: str, enabled: bool = True) -> None:
        """``enabled`` false records nothing (``MARKETPLACE_METRICS=false``)."""
        self.namespace = namespace
        self.enabled = enabled
        # Tag dicts by label values: a request builds none once its route has been seen.
        self._request_tags: dict[tuple[str, str, str], dict[str, str]] = {}
        self._latency_tags: dict[tuple[str, str], dict[str, str]] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request answered with ``status`` after ``seconds``."""
        key = (method, route, str(status))
        tags = self._request_tags.get(key)
        if tags is None:
            tags = self._request_tags[key] = {
                "marketplace": self.namespace,
                "method": method,
                "route": route,
                "status": key[2],
            }
        REQUESTS.inc(1, tags)
        timing = self._latency_tags.get((method, route))
        if timing is None:
            timing = self._latency_tags[(method, route)] = {
                "marketplace": self.namespace,
                "method": method,
                "route": route,
            }
        LATENCY.observe(seconds, timing)

    def checkout(self, status: str, failure_reason: str | None) -> None:
        """Count a checkout answer."""
        if not self.enabled:
            return
        ORDERS.inc(
            1, {"marketplace": self.namespace, "status": status, "reason": failure_reason or ""}
        )

    def checkout_prices(self, outcome: str) -> None:
        """Count a checkout answer by its prices: current, stale_cart or price_changed."""
        if self.enabled:
            CHECKOUT_PRICES.inc(1, {"marketplace": self.namespace, "outcome": outcome})


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

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
            self.metrics.request(
                scope["method"], route_label(scope), status, time.perf_counter() - started
            )
