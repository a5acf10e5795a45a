"""Helpers shared by the e2e modules: problem assertions, products, checkouts, polling."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login

PROBLEM_JSON = "application/problem+json"
PASSWORD = "password123"
ADDRESS = {"name": "Bo", "street": "1 Main St", "city": "Town", "zip": "12345", "country": "US"}
T = TypeVar("T")


def describe(reply: httpx.Response) -> str:
    """One line naming the request and the answer, for assertion messages."""
    request = reply.request
    return f"{request.method} {request.url.path}?{request.url.query.decode()} -> " + (
        f"{reply.status_code} {reply.headers.get('content-type')} {reply.text[:400]}"
    )


def media_type(reply: httpx.Response) -> str:
    """The response's media type without parameters."""
    return reply.headers.get("content-type", "").split(";")[0].strip()


def assert_problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    """``reply`` is an RFC 9457 problem with ``status``; returns its body."""
    assert reply.status_code == status, describe(reply)
    assert media_type(reply) == PROBLEM_JSON, describe(reply)
    body: dict[str, Any] = reply.json()
    assert body["status"] == status, describe(reply)
    assert isinstance(body.get("title"), str) and body["title"], describe(reply)
    assert isinstance(body.get("type"), str) and body["type"], describe(reply)
    assert isinstance(body.get("detail"), str), describe(reply)
    return body


def assert_client_error(reply: httpx.Response) -> dict[str, Any]:
    """``reply`` is a 4xx problem (never a 5xx); returns its body."""
    assert 400 <= reply.status_code < 500, describe(reply)
    return assert_problem(reply, reply.status_code)


def ok(reply: httpx.Response, status: int = 200) -> Any:
    """The JSON body of a successful answer with ``status``."""
    assert reply.status_code == status, describe(reply)
    assert media_type(reply) == "application/json", describe(reply)
    return reply.json()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def admin_headers(http: httpx.AsyncClient) -> dict[str, str]:
    """Headers of the admin ensured at start-up."""
    return bearer(await login(http, ADMIN_EMAIL, ADMIN_PASSWORD))


def unique(prefix: str) -> str:
    """A short name nobody else in the session uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def create_product(
    http: httpx.AsyncClient,
    seller: dict[str, Any],
    *,
    name: str | None = None,
    category: str = "misc",
    price_cents: int = 1000,
    initial_stock: int = 10,
    description: str = "",
) -> dict[str, Any]:
    """A product listed by ``seller``."""
    reply = await http.post(
        "/v1/products",
        json={
            "name": name or unique("Widget "),
            "description": description,
            "category": category,
            "price_cents": price_cents,
            "initial_stock": initial_stock,
        },
        headers=seller["headers"],
    )
    product: dict[str, Any] = ok(reply, 201)
    return product


def order_body(
    items: list[tuple[str, int]] | None = None,
    *,
    card: str = "tok_visa",
    address: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A checkout body: ``items`` as (product_id, quantity), or None for the cart."""
    body: dict[str, Any] = {
        "payment": {"card_token": card},
        "shipping_address": dict(address or ADDRESS),
    }
    if items is not None:
        body["items"] = [{"product_id": pid, "quantity": qty} for pid, qty in items]
    return body


async def checkout(
    http: httpx.AsyncClient,
    buyer: dict[str, Any],
    items: list[tuple[str, int]] | None = None,
    *,
    card: str = "tok_visa",
    key: str | None = None,
) -> httpx.Response:
    """POST /v1/orders with a fresh (or the given) Idempotency-Key."""
    return await http.post(
        "/v1/orders",
        json=order_body(items, card=card),
        headers={**buyer["headers"], "Idempotency-Key": key or unique("key-")},
    )


async def settled_order(
    http: httpx.AsyncClient, buyer: dict[str, Any], reply: httpx.Response
) -> dict[str, Any]:
    """The order a 201 checkout answered with, polled past ``pending``."""
    order: dict[str, Any] = ok(reply, 201)
    if order["status"] != "pending":
        return order
    path = f"/v1/orders/{order['id']}"

    async def read() -> dict[str, Any]:
        found: dict[str, Any] = ok(await http.get(path, headers=buyer["headers"]))
        return found

    return await eventually(read, lambda o: o["status"] != "pending")


async def eventually(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 30.0
) -> T:
    """Call ``read`` until ``done`` holds for its value; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout_s}s: {value!r}")
        await asyncio.sleep(0.2)


async def scrape_with(http: httpx.AsyncClient, *wanted: str, timeout_s: float = 60.0) -> str:
    """GET /metrics until every line of ``wanted`` is in it (a recorded figure reaches the
    scrape within a few seconds: Ray's report interval, then the gateway's scrape window).

    A 503 on the way is polled through: the gateway answers it when no node's export answered
    within its wait, which a busy machine's metrics agent can miss now and then.
    """
    last: list[httpx.Response] = []

    async def read() -> str:
        reply = await http.get("/metrics")
        last[:] = [reply]
        return reply.text if reply.status_code == 200 else ""

    try:
        return await eventually(read, lambda text: all(w in text for w in wanted), timeout_s)
    except AssertionError:
        reply = last[-1]
        missing = [w for w in wanted if w not in reply.text]
        raise AssertionError(
            f"not in GET /metrics after {timeout_s}s: {missing} (last answer {reply.status_code})"
        ) from None


async def audit_ok(http: httpx.AsyncClient) -> dict[str, Any]:
    """The admin audit, asserted clean."""
    reply = await http.get("/v1/admin/audit", headers=await admin_headers(http))
    report: dict[str, Any] = ok(reply)
    assert report["ok"] is True, report
    return report
