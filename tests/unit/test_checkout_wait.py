"""A checkout that outlasts ``checkout_wait_s`` (serve_app/routes/orders.py), on an app built
around a fake client. No Ray: the client's coordinator is a pair of fake calls.

Once the wait is over the route asks for the order its Idempotency-Key stands for. A saga
that is stored but still running answers 201 ``pending``; an order whose insert has not
committed yet is unknown to its coordinator, and that must read as "retry", not as 404 (the
retry with the same key meets the order once it is stored)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from marketplace.config import Settings
from marketplace.domain.errors import NotFound
from marketplace.domain.orders import Order, OrderStatus, PlaceOrder
from marketplace.domain.users import Role, User
from tests.unit.factories import BUYER, address, make_order
from tests.unit.test_gateway_deps import TOKENS, gateway_over

pytestmark = pytest.mark.unit

BUYER_USER = User(id=BUYER, email="b@example.com", name="B", role=Role.BUYER, password_hash="x")
ORDER = {"payment": {"card_token": "tok_visa"}, "shipping_address": address()}
KEY = "checkout-1"


class SlowCheckouts:
    """A client whose checkouts answer only once the route has looked the order up.

    ``stored`` says whether the coordinator holds the order by then (its insert committed,
    the saga still running) or not (the insert outlasted the wait)."""

    def __init__(self, *, stored: bool) -> None:
        self.stored = stored
        self.looked_up: list[str] = []
        self._answer: asyncio.Event | None = None

    def held_product(self, product_id: str) -> None:
        return None

    async def submit(self, command: PlaceOrder) -> Order:
        self._answer = asyncio.Event()
        await self._answer.wait()
        return make_order(id=command.order_id(), status=OrderStatus.CONFIRMED)

    async def order_for_key(self, command: PlaceOrder) -> Order:
        order_id = command.order_id()
        self.looked_up.append(order_id)
        assert self._answer is not None
        self._answer.set()  # the checkout goes on after the answer, as a saga would
        if not self.stored:
            raise NotFound(f"order {order_id} not found", order_id=order_id)
        return make_order(id=order_id, status=OrderStatus.PENDING)


@contextmanager
def gateway(fake: SlowCheckouts) -> Iterator[TestClient]:
    with gateway_over(fake, Settings(checkout_wait_s=0.05)) as client:
        yield client


def checkout(http: TestClient) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS.issue(BUYER_USER)}", "Idempotency-Key": KEY}
    return http.post("/v1/orders", json=ORDER, headers=headers)


def test_an_insert_that_outlasts_the_wait_is_503_with_retry_after() -> None:
    fake = SlowCheckouts(stored=False)
    with gateway(fake) as http:
        reply = checkout(http)
    assert fake.looked_up, "the route never looked the order up"
    assert reply.status_code == 503, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert int(reply.headers["Retry-After"]) >= 1
    body = reply.json()
    assert body["status"] == 503
    assert "retry with the same Idempotency-Key" in body["detail"]


def test_a_stored_saga_that_outlasts_the_wait_is_201_pending() -> None:
    fake = SlowCheckouts(stored=True)
    with gateway(fake) as http:
        reply = checkout(http)
    assert fake.looked_up, "the route never looked the order up"
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "pending"
