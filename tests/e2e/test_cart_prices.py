"""Prices in carts over real HTTP (issue #19): the cart shows each line at the price it was
put in at and at the product's price now; a checkout of the cart charges the price now and
records the one the cart held beside it, or, given the total the buyer saw, refuses a moved
price (409 `price_changed`) and changes nothing. The in-process client answers the same."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import signup
from tests.e2e.support import (
    assert_problem,
    create_product,
    eventually,
    ok,
    order_body,
    scrape_with,
    settled_order,
    unique,
)

pytestmark = pytest.mark.e2e


async def put(
    http: httpx.AsyncClient, buyer: dict[str, Any], product_id: str, quantity: int
) -> dict[str, Any]:
    cart: dict[str, Any] = ok(
        await http.put(
            f"/v1/cart/items/{product_id}", json={"quantity": quantity}, headers=buyer["headers"]
        )
    )
    return cart


async def read_cart(http: httpx.AsyncClient, buyer: dict[str, Any]) -> dict[str, Any]:
    cart: dict[str, Any] = ok(await http.get("/v1/cart", headers=buyer["headers"]))
    return cart


def lines_of(cart: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line["product_id"]: line for line in cart["items"]}


async def test_a_repriced_product_shows_in_the_cart_and_checkout_records_both_prices(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
    kettle = await create_product(http, seller, price_cents=1200, initial_stock=5)
    lamp = await create_product(http, seller, price_cents=500, initial_stock=5)
    await put(http, buyer, kettle["id"], 2)
    added = await put(http, buyer, lamp["id"], 1)
    # The cart answer of a PUT is priced too, and nothing has moved yet.
    assert added["price_changed"] is False
    assert added["total_cents"] == added["current_total_cents"] == 2 * 1200 + 500

    repriced = ok(
        await http.patch(
            f"/v1/products/{kettle['id']}", json={"price_cents": 1500}, headers=seller["headers"]
        )
    )
    assert repriced["version"] == 2
    # Pulled at read: the first cart read after the PATCH was answered shows it.
    cart = await read_cart(http, buyer)
    assert cart["price_changed"] is True
    assert cart["total_cents"] == 2 * 1200 + 500  # DESIGN.md's total: the prices when added
    assert cart["current_total_cents"] == 2 * 1500 + 500
    lines = lines_of(cart)
    assert lines[kettle["id"]] == {
        "product_id": kettle["id"],
        "quantity": 2,
        "unit_price_cents": 1200,
        "product_version": 1,
        "current_price_cents": 1500,
        "current_version": 2,
        "price_changed": True,
        "available": True,
    }
    assert lines[lamp["id"]]["price_changed"] is False
    assert lines[lamp["id"]]["current_price_cents"] == lines[lamp["id"]]["unit_price_cents"] == 500

    # The in-process client answers what HTTP answers.
    client = served["runtime"].client
    assert (await client.get_cart(buyer["id"])).public() == cart

    # At the total the cart showed when the lines went in: refused, and nothing changes.
    headers = {**buyer["headers"], "Idempotency-Key": unique("cart-price-")}
    refused = await http.post(
        "/v1/orders",
        json={**order_body(), "expected_total_cents": cart["total_cents"]},
        headers=headers,
    )
    problem = assert_problem(refused, 409)
    assert problem["code"] == "price_changed", problem
    assert problem["total_cents"] == cart["current_total_cents"]
    refused_lines = {item["product_id"]: item for item in problem["items"]}
    assert refused_lines[kettle["id"]]["unit_price_cents"] == 1500
    assert refused_lines[kettle["id"]]["shown_unit_price_cents"] == 1200
    assert await read_cart(http, buyer) == cart
    stock = ok(await http.get(f"/v1/products/{kettle['id']}/stock"))
    assert (stock["available"], stock["reserved"]) == (5, 0)
    assert ok(await http.get("/v1/orders", headers=buyer["headers"]))["items"] == []

    # Without an expected total: charged the current price, the cart's price recorded beside.
    headers = {**buyer["headers"], "Idempotency-Key": unique("cart-price-")}
    placed = await http.post("/v1/orders", json=order_body(), headers=headers)
    order = await settled_order(http, buyer, placed)
    assert order["status"] == "confirmed", order
    assert order["total_cents"] == cart["current_total_cents"] == 2 * 1500 + 500
    items = {item["product_id"]: item for item in order["items"]}
    assert items[kettle["id"]]["unit_price_cents"] == 1500
    assert items[kettle["id"]]["product_version"] == 2
    assert items[kettle["id"]]["shown_unit_price_cents"] == 1200
    assert items[lamp["id"]]["unit_price_cents"] == items[lamp["id"]]["shown_unit_price_cents"]
    stored = ok(await http.get(f"/v1/orders/{order['id']}", headers=buyer["headers"]))
    assert stored["items"] == order["items"]
    payment = await client.get_payment(order["id"])
    assert payment is not None and payment.amount_cents == order["total_cents"]
    # The checked-out lines leave the cart.
    await eventually(lambda: read_cart(http, buyer), lambda c: c["items"] == [])
    # Both anomalies are counted where operators look.
    await scrape_with(http, 'outcome="price_changed"}', 'outcome="stale_cart"}')


async def test_a_checkout_at_the_current_total_goes_through(http: httpx.AsyncClient) -> None:
    """``current_total_cents`` is what a checkout of the cart charges: sent as the expected
    total, it is accepted."""
    seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
    product = await create_product(http, seller, price_cents=1000, initial_stock=5)
    await put(http, buyer, product["id"], 3)
    ok(
        await http.patch(
            f"/v1/products/{product['id']}", json={"price_cents": 800}, headers=seller["headers"]
        )
    )
    cart = await read_cart(http, buyer)
    assert cart["price_changed"] is True and cart["current_total_cents"] == 3 * 800
    headers = {**buyer["headers"], "Idempotency-Key": unique("cart-agreed-")}
    placed = await http.post(
        "/v1/orders",
        json={**order_body(), "expected_total_cents": cart["current_total_cents"]},
        headers=headers,
    )
    order = await settled_order(http, buyer, placed)
    assert order["status"] == "confirmed" and order["total_cents"] == 3 * 800
    [item] = order["items"]
    assert (item["unit_price_cents"], item["shown_unit_price_cents"]) == (800, 1000)


async def test_named_items_record_no_shown_price(http: httpx.AsyncClient) -> None:
    seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
    product = await create_product(http, seller, price_cents=700, initial_stock=5)
    headers = {**buyer["headers"], "Idempotency-Key": unique("named-")}
    placed = await http.post("/v1/orders", json=order_body([(product["id"], 1)]), headers=headers)
    order = await settled_order(http, buyer, placed)
    assert [item["shown_unit_price_cents"] for item in order["items"]] == [None]


async def test_a_withdrawn_product_shows_unavailable_in_the_cart(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
    product = await create_product(http, seller, price_cents=900, initial_stock=5)
    other = await create_product(http, seller, price_cents=100, initial_stock=5)
    await put(http, buyer, product["id"], 1)
    ok(await http.delete(f"/v1/products/{product['id']}", headers=seller["headers"]))
    # A cart-changing answer reads the other lines' products too.
    cart = await put(http, buyer, other["id"], 2)
    line = lines_of(cart)[product["id"]]
    assert line["available"] is False and line["price_changed"] is False
    assert line["current_version"] == 2 and line["product_version"] == 1
    assert lines_of(cart)[other["id"]]["available"] is True
    assert cart["current_total_cents"] == cart["total_cents"] == 900 + 2 * 100
    assert await read_cart(http, buyer) == cart
    assert (await served["runtime"].client.get_cart(buyer["id"])).public() == cart
