"""``HttpTarget`` against a scripted server (httpx.MockTransport): the requests each operation
makes and how answers read as outcomes. No gateway; tests/e2e/test_sim_http.py runs the real one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from marketplace.domain.ids import sibling_id
from marketplace.sim.deliveries import Deliveries
from marketplace.sim.http_seed import HttpMarket
from marketplace.sim.http_target import HTTP_5XX, TIMEOUT, HttpTarget, problem_code
from marketplace.sim.loops import OK, Outcome
from marketplace.sim.operations import (
    AbandonCart,
    AddToCart,
    Browse,
    Checkout,
    MoveShipment,
    ReadDashboard,
    Restock,
    Search,
    UpdatePrice,
)
from marketplace.sim.shopping import STALE_CART, IdleCarrier

pytestmark = pytest.mark.unit

BUYER = "buyer@sim.test"
SELLER = "seller@sim.test"
CARRIER = "carrier@sim.test"
ORDER = "ord_0123456789abcdef0123456789abcdef"
Handler = Callable[[httpx.Request], httpx.Response]


def problem(status: int, code: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"status": status, "title": "x", "detail": "x"}
    if code:
        body["code"] = code
    return httpx.Response(status, content=orjson.dumps(body))


def order(status: str, reason: str | None = None) -> httpx.Response:
    return httpx.Response(
        201, content=orjson.dumps({"id": ORDER, "status": status, "failure_reason": reason})
    )


class Server:
    """Records every request and answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def lines(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def target_for(server: Server, deliveries: Deliveries | None = None) -> HttpTarget:
    market = HttpMarket(
        base_url="http://sim.test",
        password="seeded-password",
        tokens={BUYER: "tok-buyer", SELLER: "tok-seller", CARRIER: "tok-carrier"},
        product_ids={"prd_market": "prd_server"},
    )
    http = httpx.AsyncClient(base_url=market.base_url, transport=httpx.MockTransport(server))
    return HttpTarget(market, deliveries, http=http, key_scope="run1")


async def test_operations_use_the_actors_token_and_the_servers_product_ids() -> None:
    server = Server(lambda request: httpx.Response(200, content=b"{}"))
    target = target_for(server)
    assert await target.run(Browse(BUYER, "prd_market")) == OK
    assert await target.run(Search(BUYER, "mug", "kitchen")) == OK
    assert await target.run(AddToCart(BUYER, "prd_market", 2)) == OK
    assert await target.run(AddToCart(BUYER, "prd_market", 3)) == OK
    assert await target.run(AbandonCart(BUYER)) == OK
    assert await target.run(ReadDashboard(SELLER)) == OK
    assert await target.run(UpdatePrice(SELLER, "prd_market", 1299)) == OK
    assert await target.run(Restock(SELLER, "prd_market", 10)) == OK
    assert server.lines() == [
        "GET /v1/products/prd_server",
        "GET /v1/products",
        "PUT /v1/cart/items/prd_server",
        "PUT /v1/cart/items/prd_server",
        "DELETE /v1/cart",
        "GET /v1/sellers/me/dashboard",
        "PATCH /v1/products/prd_server",
        "POST /v1/products/prd_server/stock",
    ]
    auth = [r.headers["Authorization"] for r in server.requests]
    assert auth == ["Bearer tok-buyer"] * 5 + ["Bearer tok-seller"] * 3
    assert dict(server.requests[1].url.params) == {"q": "mug", "category": "kitchen"}
    # The cart line is set to what the customer's adds sum to, as ClientTarget writes it.
    quantities = [orjson.loads(r.content)["quantity"] for r in server.requests[2:4]]
    assert quantities == [2, 5]
    assert orjson.loads(server.requests[6].content) == {"price_cents": 1299}
    assert orjson.loads(server.requests[7].content) == {"delta": 10}


async def test_a_confirmed_checkout_is_queued_for_the_carriers() -> None:
    server = Server(lambda request: order("confirmed"))
    deliveries = Deliveries()
    target = target_for(server, deliveries)
    assert await target.run(Checkout(BUYER, "sim-key-1")) == OK
    sent = server.requests[0]
    # Scoped to the target's run: the same seed's keys do not replay another run's orders.
    assert sent.headers["Idempotency-Key"] == "run1:sim-key-1"
    body = orjson.loads(sent.content)
    assert body["payment"] == {"card_token": "tok_visa"}
    assert "items" not in body  # the cart is checked out
    move = deliveries.take()
    assert move is not None and move.order_id == ORDER


async def test_a_checkout_charged_at_a_price_the_cart_did_not_show_is_noted() -> None:
    def confirmed(shown: int | None) -> Handler:
        item = {
            "product_id": "prd_server",
            "unit_price_cents": 1500,
            "shown_unit_price_cents": shown,
        }
        body = {"id": ORDER, "status": "confirmed", "failure_reason": None, "items": [item]}
        return lambda request: httpx.Response(201, content=orjson.dumps(body))

    for shown, outcome in ((1200, Outcome(True, STALE_CART)), (1500, OK), (None, OK)):
        target = target_for(Server(confirmed(shown)))
        assert await target.run(Checkout(BUYER, f"k{shown}")) == outcome


async def test_a_refused_checkout_clears_the_cart_and_reads_as_its_reason() -> None:
    server = Server(
        lambda r: order("cancelled", "out_of_stock") if r.method == "POST" else httpx.Response(200)
    )
    deliveries = Deliveries()
    target = target_for(server, deliveries)
    assert await target.run(Checkout(BUYER, "k")) == Outcome.failure("out_of_stock")
    assert server.lines() == ["POST /v1/orders", "DELETE /v1/cart"]
    assert len(deliveries) == 0


async def test_error_answers_read_as_codes_and_5xx_stays_apart() -> None:
    answers = {"/v1/sellers/me/dashboard": problem(403, "forbidden")}

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.get(request.url.path) or problem(503, "unavailable")

    target = target_for(Server(handler))
    assert await target.run(ReadDashboard(SELLER)) == Outcome.failure("forbidden")
    assert await target.run(Browse(BUYER, "prd_market")) == Outcome.failure(HTTP_5XX)
    assert problem_code(problem(404)) == "http_404"
    assert problem_code(httpx.Response(502, content=b"<html>bad gateway</html>")) == "http_502"


async def test_an_expired_token_logs_in_again_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/token":
            return httpx.Response(200, content=orjson.dumps({"access_token": "tok-fresh"}))
        if request.headers["Authorization"] == "Bearer tok-fresh":
            return httpx.Response(200, content=b"{}")
        return problem(401, "invalid_token")

    server = Server(handler)
    target = target_for(server)
    assert await target.run(ReadDashboard(SELLER)) == OK
    assert server.lines() == [
        "GET /v1/sellers/me/dashboard",
        "POST /v1/auth/token",
        "GET /v1/sellers/me/dashboard",
    ]
    assert b"username=seller%40sim.test" in server.requests[1].content
    assert target.market.tokens[SELLER] == "tok-fresh"
    assert target.relogins == 1


async def test_a_login_that_fails_leaves_the_401_as_the_outcome() -> None:
    server = Server(lambda request: problem(401, "bad_credentials"))
    target = target_for(server)
    assert await target.run(ReadDashboard(SELLER)) == Outcome.failure("bad_credentials")
    assert len(server.requests) == 3  # the request, one login, one retry: no loop
    assert target.relogins == 0


async def test_carriers_move_the_oldest_shipment_and_retry_only_what_may_pass_later() -> None:
    shipment = sibling_id(ORDER, "shp")
    answers = [httpx.Response(200, content=b"{}"), problem(503), problem(409, "conflict")]
    server = Server(lambda request: answers.pop(0))
    deliveries = Deliveries()
    target = target_for(server, deliveries)
    assert await target.run(MoveShipment(CARRIER)) == IdleCarrier  # nothing due: no request
    deliveries.confirmed(ORDER)
    assert await target.run(MoveShipment(CARRIER)) == OK
    assert orjson.loads(server.requests[0].content) == {"status": "shipped"}
    assert server.requests[0].url.path == f"/v1/shipments/{shipment}"
    assert server.requests[0].headers["Authorization"] == "Bearer tok-carrier"
    # A 5xx gives the move back, first in line ...
    assert await target.run(MoveShipment(CARRIER)) == Outcome.failure(HTTP_5XX)
    assert len(deliveries) == 1
    # ... a refusal drops it.
    assert await target.run(MoveShipment(CARRIER)) == Outcome.failure("conflict")
    assert len(deliveries) == 0
    assert [orjson.loads(r.content)["status"] for r in server.requests] == ["shipped"] + [
        "delivered"
    ] * 2


async def test_a_timeout_is_an_outcome_and_gives_a_move_back() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    deliveries = Deliveries()
    deliveries.confirmed(ORDER)
    target = target_for(Server(handler), deliveries)
    assert await target.run(MoveShipment(CARRIER)) == Outcome.failure(TIMEOUT)
    assert len(deliveries) == 1
    assert await target.run(Browse(BUYER, "prd_market")) == Outcome.failure(TIMEOUT)


async def test_unknown_actors_and_products_are_the_callers_mistake() -> None:
    target = target_for(Server(lambda request: httpx.Response(200)))
    with pytest.raises(LookupError):
        await target.run(Browse("nobody@sim.test", "prd_market"))
    with pytest.raises(LookupError):
        await target.run(Browse(BUYER, "prd_unseeded"))


async def test_open_and_close_own_the_client_only_when_they_made_it() -> None:
    market = HttpMarket(base_url="http://sim.test", password="p" * 8)
    target = HttpTarget(market, limit=20, pool_size=8, timeout=2)
    async with target:
        # 20 connections as pools of 8, 8 and 4
        pools = [client._transport._pool._max_connections for client in target._clients]  # type: ignore[attr-defined]
        assert pools == [8, 8, 4]
        made = list(target._clients)
    assert target._clients == []
    assert all(client.is_closed for client in made)
    with pytest.raises(RuntimeError):
        await target.run(ReadDashboard(SELLER))

    given = httpx.AsyncClient()
    async with HttpTarget(market, http=given) as target:
        assert target._clients == [given]
    assert not given.is_closed
    await given.aclose()


async def test_each_target_scopes_its_keys_apart() -> None:
    server = Server(lambda request: order("confirmed"))
    market = HttpMarket(
        base_url="http://sim.test",
        password="seeded-password",
        tokens={BUYER: "tok-buyer"},
        product_ids={},
    )
    http = httpx.AsyncClient(base_url=market.base_url, transport=httpx.MockTransport(server))
    for _ in range(2):
        await HttpTarget(market, http=http).run(Checkout(BUYER, "same-key"))
    first, second = (request.headers["Idempotency-Key"] for request in server.requests)
    assert first != second
    assert first.endswith(":same-key") and second.endswith(":same-key")
