"""Checkouts answered ahead of FastAPI (serve_app/fast_checkout.py), on a replica over a fake
client. No Ray.

Two ways in: the middleware driven alone, with an ASGI app behind it that records what reached
it (what must pass through to FastAPI, body and all, and what must not), and the whole app, where
the same checkout is sent once so that the fast path takes it and once with a JSON content type
that only FastAPI's route takes (``application/vnd.order+json``): both must answer alike, errors
included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from marketplace.config import Settings
from marketplace.domain.errors import NotFound, PriceChanged
from marketplace.domain.orders import Order, OrderStatus, PlaceOrder
from marketplace.domain.users import Role, User
from serve_app.fast_checkout import ORDERS_ROUTE, FastCheckouts
from serve_app.gateway import build_api
from serve_app.replica import Replica
from tests.unit.factories import BUYER, hex_id, make_order
from tests.unit.test_gateway_deps import (
    ORDER,
    SELLER,
    TOKENS,
    no_revocations,
    replica_over,
    served_in_process,
)

pytestmark = pytest.mark.unit

BUYER_USER = User(id=BUYER, email="b@example.com", name="B", role=Role.BUYER, password_hash="x")
BODY = orjson.dumps(ORDER)
ONLY_FASTAPI = "application/vnd.order+json"  # JSON to FastAPI's route, not to the fast path


class Checkouts:
    """A client whose checkouts confirm, or raise what it is told to."""

    def __init__(self) -> None:
        self.submitted: list[PlaceOrder] = []
        self.raises: Exception | None = None

    def held_product(self, product_id: str) -> None:
        return None

    async def submit(self, command: PlaceOrder) -> Order:
        self.submitted.append(command)
        if self.raises is not None:
            raise self.raises
        return make_order(
            id=command.order_id(), buyer_id=command.buyer_id, status=OrderStatus.CONFIRMED
        )


class Behind:
    """Stands where FastAPI's router would: records each request's body, answers 418."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def headers(user: User | None = BUYER_USER, /, **extra: str) -> dict[str, str]:
    sent = {"Content-Type": "application/json", "Idempotency-Key": "key-1"}
    if user is not None:
        sent["Authorization"] = f"Bearer {TOKENS.issue(user)}"
    sent.update(extra)
    return sent


async def call(
    app: FastCheckouts,
    sent: dict[str, str] | list[tuple[str, str]],
    body: bytes = BODY,
    *,
    method: str = "POST",
    path: str = ORDERS_ROUTE,
) -> tuple[Scope, list[Message]]:
    pairs = list(sent.items()) if isinstance(sent, dict) else sent
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
    }
    # In two parts, as a client may stream it: the path must read the whole body.
    parts = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": False},
    ]
    replies: list[Message] = []

    async def receive() -> Message:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        replies.append(message)

    await app(scope, receive, send)
    return scope, replies


@pytest.fixture
def fake() -> Checkouts:
    return Checkouts()


def replica(fake: Checkouts, settings: Settings | None = None) -> Replica:
    return replica_over(settings or Settings(), fake, None, TOKENS.secret, no_revocations())


async def test_a_buyers_well_formed_checkout_is_placed_without_fastapi(fake: Checkouts) -> None:
    behind = Behind()
    app = FastCheckouts(behind, replica(fake))
    scope, replies = await call(app, headers())
    assert behind.bodies == []
    assert replies[0]["status"] == 201
    answer = orjson.loads(replies[1]["body"])
    assert dict(replies[0]["headers"]) == {
        b"content-length": str(len(replies[1]["body"])).encode(),
        b"content-type": b"application/json",
    }
    (command,) = fake.submitted
    assert (command.buyer_id, command.idempotency_key) == (BUYER, "key-1")
    assert command.card_token == "tok_visa" and command.lines is None
    assert answer["id"] == command.order_id() and answer["status"] == "confirmed"
    assert scope["route"].path == ORDERS_ROUTE  # what RequestMetrics labels it with
    # An admin may check out as well, as the route allows.
    admin = User(
        id=hex_id("usr", 9), email="a@example.com", name="A", role=Role.ADMIN, password_hash="x"
    )
    _, replies = await call(app, headers(admin))
    assert replies[0]["status"] == 201 and behind.bodies == []


@pytest.mark.parametrize(
    ("sent", "body"),
    [
        (headers(None), BODY),  # no token
        (headers(None, Authorization="Bearer not-a-token"), BODY),
        (headers(None, Authorization=f"Basic {TOKENS.issue(BUYER_USER)}"), BODY),
        (headers(SELLER), BODY),  # a role that may not check out
        ({k: v for k, v in headers().items() if k != "Idempotency-Key"}, BODY),
        (headers(**{"Idempotency-Key": "  "}), BODY),
        (headers(**{"Idempotency-Key": "k" * 201}), BODY),
        (headers(**{"Idempotency-Key": "a\x00b"}), BODY),
        ([*headers().items(), ("Idempotency-Key", "key-2")], BODY),  # the key twice
        (headers(**{"Content-Type": "text/plain"}), BODY),
        (headers(**{"Content-Type": ONLY_FASTAPI}), BODY),
        ({k: v for k, v in headers().items() if k != "Content-Type"}, BODY),
        (headers(), b""),
        (headers(), b"{not json"),
        (headers(), orjson.dumps({**ORDER, "coupon": "x"})),  # unknown field
        (headers(), orjson.dumps({"payment": ORDER["payment"]})),  # no address
        (headers(), orjson.dumps({**ORDER, "items": [{"product_id": "p", "quantity": "1"}]})),
        (headers(), orjson.dumps({**ORDER, "items": []})),
    ],
)
async def test_anything_fastapi_would_refuse_passes_through_with_its_body(
    fake: Checkouts, sent: dict[str, str] | list[tuple[str, str]], body: bytes
) -> None:
    behind = Behind()
    app = FastCheckouts(behind, replica(fake))
    scope, replies = await call(app, sent, body)
    assert behind.bodies == [body] and replies[0]["status"] == 418
    assert fake.submitted == [] and "route" not in scope


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ORDERS_ROUTE), ("POST", "/v1/orders/ord_1/cancel"), ("POST", "/v1/orders/")],
)
async def test_other_requests_pass_through(fake: Checkouts, method: str, path: str) -> None:
    behind = Behind()
    app = FastCheckouts(behind, replica(fake))
    await call(app, headers(), method=method, path=path)
    assert behind.bodies == [BODY] and fake.submitted == []


def both_ways(http: TestClient, key: str, body: bytes = BODY) -> tuple[Any, Any]:
    """The same checkout by the fast path and by FastAPI's route (each with its own key)."""
    fast = http.post(ORDERS_ROUTE, content=body, headers=headers(**{"Idempotency-Key": key}))
    routed = http.post(
        ORDERS_ROUTE,
        content=body,
        headers=headers(**{"Idempotency-Key": key + "-r", "Content-Type": ONLY_FASTAPI}),
    )
    return fast, routed


def alike(fast: Any, routed: Any) -> None:
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert fast.headers.get("retry-after") == routed.headers.get("retry-after")
    one, other = fast.json(), routed.json()
    for answer in (one, other):
        answer.pop("id", None)  # each key names its own order
    assert one == other


@pytest.fixture
def http(fake: Checkouts) -> Iterator[TestClient]:
    # A route's unexpected error is re-raised by Starlette after its 500 is sent: the test client
    # must not raise it here, to compare the answers.
    app = build_api(replica(fake, Settings(checkout_rate_per_minute=6)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_the_fast_path_and_the_route_answer_alike(http: TestClient, fake: Checkouts) -> None:
    fast, routed = both_ways(http, "placed")
    assert fast.status_code == 201
    alike(fast, routed)
    assert fast.content == routed.content.replace(
        routed.json()["id"].encode(), fast.json()["id"].encode()
    )
    # A domain error, with its details, as the route's exception handler renders it.
    fake.raises = PriceChanged("prices moved", total_cents=1500, items=[])
    alike(*both_ways(http, "moved"))
    # A failure nobody expected: 500, problem details, for both.
    fake.raises = RuntimeError("boom")
    fast, routed = both_ways(http, "boom")
    assert fast.status_code == 500
    alike(fast, routed)
    assert len(fake.submitted) == 6
    # Past the buyer's checkout rate (6 a minute, one spent per checkout either way): 429.
    fast, routed = both_ways(http, "limited")
    assert fast.status_code == 429 and fast.headers["retry-after"]
    alike(fast, routed)
    assert len(fake.submitted) == 6


def test_a_slow_saga_is_answered_alike(fake: Checkouts) -> None:
    """Past ``checkout_wait_s`` both ask for the order by key (here: not stored yet, 503)."""

    async def never(command: PlaceOrder) -> Order:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def unknown(command: PlaceOrder) -> Order:
        raise NotFound("no such order")

    fake.submit = never  # type: ignore[method-assign]
    fake.order_for_key = unknown  # type: ignore[attr-defined]
    settings = Settings(checkout_wait_s=0.05)
    with served_in_process(settings, fake, None, TOKENS.secret, no_revocations()) as http:
        fast, routed = both_ways(http, "slow")
    assert fast.status_code == 503
    alike(fast, routed)
