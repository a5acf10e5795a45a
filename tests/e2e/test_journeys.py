"""Whole journeys over real HTTP: a buyer's, a seller's and a carrier's (DESIGN.md section 6)."""

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import login, signup
from tests.e2e.support import (
    ADDRESS,
    PASSWORD,
    admin_headers,
    assert_problem,
    audit_ok,
    checkout,
    create_product,
    eventually,
    ok,
    order_body,
    settled_order,
    unique,
)

pytestmark = pytest.mark.e2e


async def stock_of(http: httpx.AsyncClient, product_id: str) -> dict[str, Any]:
    stock: dict[str, Any] = ok(await http.get(f"/v1/products/{product_id}/stock"))
    return stock


async def all_pages(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Follow ``next_cursor`` to the end; returns the pages."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = ok(await http.get(path, params=query, headers=headers or {}))
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


def ids_of(pages: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for page in pages for item in page["items"]]


async def dashboard_of(http: httpx.AsyncClient, seller: dict[str, Any]) -> dict[str, Any]:
    board: dict[str, Any] = ok(
        await http.get("/v1/sellers/me/dashboard", headers=seller["headers"])
    )
    return board


async def payment_of(served: dict[str, Any], order_id: str) -> Any:
    """The order's payment as the payment processor holds it."""
    return await served["runtime"].client.get_payment(order_id)


async def test_buyer_journey(http: httpx.AsyncClient, served: dict[str, Any]) -> None:
    seller = await signup(http, "seller")

    # register, log in, who am I
    email = f"{unique('ada-')}@example.com"
    created = await http.post(
        "/v1/users", json={"email": email, "password": PASSWORD, "name": "Ada Buyer"}
    )
    user = ok(created, 201)
    assert set(user) == {"id", "email", "name", "role"}
    assert user["email"] == email and user["name"] == "Ada Buyer" and user["role"] == "buyer"
    assert user["id"].startswith("usr_")
    taken = await http.post(
        "/v1/users", json={"email": email.upper(), "password": PASSWORD, "name": "Again"}
    )
    assert_problem(taken, 409)
    wrong = await http.post("/v1/auth/token", data={"username": email, "password": "nope-nope"})
    assert_problem(wrong, 401)
    token_reply = ok(
        await http.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    )
    assert token_reply["token_type"] == "bearer"
    assert token_reply["expires_in"] == served["settings"].jwt_ttl_s
    buyer = {
        "id": user["id"],
        "headers": {"Authorization": f"Bearer {token_reply['access_token']}"},
    }
    assert ok(await http.get("/v1/users/me", headers=buyer["headers"])) == user

    # search: five of this seller's products plus one of another seller, in a fresh category
    word, category = unique("zq"), unique("cat-")
    mine = [
        await create_product(
            http,
            seller,
            name=f"{word} lamp {i}",
            category=category,
            price_cents=100 * (i + 1),
            initial_stock=10,
        )
        for i in range(5)
    ]
    other_seller = await signup(http, "seller")
    theirs = await create_product(http, other_seller, name=f"{word} chair", category=category)
    for product in mine:
        assert product["seller_id"] == seller["id"] and product["version"] == 1
        assert product["active"] is True and product["id"].startswith("prd_")
    mine_ids = {p["id"] for p in mine}

    pages = await all_pages(
        http,
        "/v1/products",
        {"q": word, "category": category, "seller_id": seller["id"], "limit": 2},
    )
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    found = ids_of(pages)
    assert len(found) == len(set(found)) and set(found) == mine_ids
    every = ids_of(await all_pages(http, "/v1/products", {"q": word, "limit": 4}))
    assert sorted(every) == sorted([*mine_ids, theirs["id"]])
    in_category = ids_of(await all_pages(http, "/v1/products", {"category": category, "limit": 3}))
    assert sorted(in_category) == sorted(every)
    by_seller = ids_of(await all_pages(http, "/v1/products", {"seller_id": seller["id"]}))
    assert set(by_seller) == mine_ids
    nothing = ok(await http.get("/v1/products", params={"q": unique("nomatch")}))
    assert nothing == {"items": [], "next_cursor": None}

    # product and stock reads (public)
    p1, p2, p3 = mine[0], mine[1], mine[2]
    assert ok(await http.get(f"/v1/products/{p1['id']}")) == p1
    stock = await stock_of(http, p1["id"])
    assert stock["product_id"] == p1["id"]
    assert stock["available"] == 10 and stock["reserved"] == 0

    # cart: put, overwrite, remove with 0, clear
    async def put(product: dict[str, Any], quantity: int) -> dict[str, Any]:
        cart: dict[str, Any] = ok(
            await http.put(
                f"/v1/cart/items/{product['id']}",
                json={"quantity": quantity},
                headers=buyer["headers"],
            )
        )
        return cart

    await put(p1, 2)
    await put(p2, 1)
    with_p3 = await put(p3, 3)
    assert {i["product_id"] for i in with_p3["items"]} == {p1["id"], p2["id"], p3["id"]}
    without_p3 = await put(p3, 0)
    assert {i["product_id"] for i in without_p3["items"]} == {p1["id"], p2["id"]}
    await put(p1, 3)
    cart = ok(await http.get("/v1/cart", headers=buyer["headers"]))
    lines = {i["product_id"]: i for i in cart["items"]}
    assert lines[p1["id"]] == {
        "product_id": p1["id"],
        "quantity": 3,
        "unit_price_cents": 100,
        "product_version": 1,
        "current_price_cents": 100,
        "current_version": 1,
        "price_changed": False,
        "available": True,
    }
    assert lines[p2["id"]]["quantity"] == 1 and lines[p2["id"]]["unit_price_cents"] == 200
    assert cart["total_cents"] == cart["current_total_cents"] == 3 * 100 + 1 * 200
    assert cart["price_changed"] is False
    cleared = ok(await http.delete("/v1/cart", headers=buyer["headers"]))
    assert cleared == {
        "items": [],
        "total_cents": 0,
        "current_total_cents": 0,
        "price_changed": False,
    }
    assert ok(await http.get("/v1/cart", headers=buyer["headers"])) == cleared
    await put(p1, 2)
    await put(p2, 1)

    # checkout from the cart (no items), idempotent by key
    key = unique("cart-checkout-")
    headers = {**buyer["headers"], "Idempotency-Key": key}
    body = order_body()
    assert "items" not in body
    first = ok(await http.post("/v1/orders", json=body, headers=headers), 201)
    assert first["status"] == "confirmed" and first["failure_reason"] is None
    assert first["buyer_id"] == buyer["id"] and first["id"].startswith("ord_")
    assert sorted(first["items"], key=lambda i: i["product_id"]) == sorted(
        [
            {
                "product_id": p1["id"],
                "seller_id": seller["id"],
                "quantity": 2,
                "unit_price_cents": 100,
                "product_version": 1,
                "shown_unit_price_cents": 100,
            },
            {
                "product_id": p2["id"],
                "seller_id": seller["id"],
                "quantity": 1,
                "unit_price_cents": 200,
                "product_version": 1,
                "shown_unit_price_cents": 200,
            },
        ],
        key=lambda i: i["product_id"],
    )
    assert first["total_cents"] == 2 * 100 + 200
    datetime.fromisoformat(first["created_at"])
    again = ok(await http.post("/v1/orders", json=body, headers=headers), 201)
    assert again == first
    other_body = order_body(address={**ADDRESS, "street": "2 Other St"})
    reused = await http.post("/v1/orders", json=other_body, headers=headers)
    assert assert_problem(reused, 422)["code"] == "idempotency_key_reused"

    # the checked-out lines leave the cart
    async def read_cart() -> dict[str, Any]:
        cart: dict[str, Any] = ok(await http.get("/v1/cart", headers=buyer["headers"]))
        return cart

    await eventually(read_cart, lambda c: c["items"] == [])
    assert (await stock_of(http, p1["id"]))["available"] == 8
    assert (await stock_of(http, p2["id"]))["available"] == 9
    assert ok(await http.get(f"/v1/orders/{first['id']}", headers=buyer["headers"])) == first

    # two more orders; the list pages newest first
    second = await settled_order(http, buyer, await checkout(http, buyer, [(p3["id"], 1)]))
    third = await settled_order(http, buyer, await checkout(http, buyer, [(p3["id"], 2)]))
    assert second["status"] == third["status"] == "confirmed"
    order_pages = await all_pages(http, "/v1/orders", {"limit": 2}, buyer["headers"])
    assert [len(page["items"]) for page in order_pages] == [2, 1]
    listed = [order for page in order_pages for order in page["items"]]
    assert [o["id"] for o in listed] == [third["id"], second["id"], first["id"]]
    assert listed[2] == first
    created_at = [datetime.fromisoformat(o["created_at"]) for o in listed]
    assert created_at == sorted(created_at, reverse=True)

    # the shipment: one package for the one seller
    shipment = ok(await http.get(f"/v1/orders/{first['id']}/shipment", headers=buyer["headers"]))
    assert shipment["order_id"] == first["id"] and shipment["status"] == "pending"
    assert shipment["id"] == "shp_" + first["id"].removeprefix("ord_")
    assert [p["seller_id"] for p in shipment["packages"]] == [seller["id"]]
    assert shipment["packages"][0]["status"] == "pending"
    assert {i["product_id"] for i in shipment["packages"][0]["items"]} == {p1["id"], p2["id"]}

    # cancel before shipping: restocked and refunded
    assert (await payment_of(served, first["id"])).captured_cents == first["total_cents"]
    cancelled = ok(await http.post(f"/v1/orders/{first['id']}/cancel", headers=buyer["headers"]))
    assert cancelled["id"] == first["id"] and cancelled["status"] == "cancelled"
    assert cancelled["failure_reason"] == "cancelled_by_buyer"
    assert (await stock_of(http, p1["id"]))["available"] == 10
    assert (await stock_of(http, p2["id"]))["available"] == 10
    payment = await payment_of(served, first["id"])
    assert payment.status.value == "refunded"
    assert payment.refunded_cents == payment.captured_cents == first["total_cents"]
    gone = ok(await http.get(f"/v1/orders/{first['id']}/shipment", headers=buyer["headers"]))
    assert gone["status"] == "cancelled"
    assert (
        ok(await http.post(f"/v1/orders/{first['id']}/cancel", headers=buyer["headers"]))
        == cancelled
    )
    assert ok(await http.get(f"/v1/orders/{first['id']}", headers=buyer["headers"])) == cancelled
    await audit_ok(http)


async def test_seller_journey(http: httpx.AsyncClient) -> None:
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    category = unique("seller-cat-")

    created = await create_product(
        http,
        seller,
        name="Walnut desk",
        category=category,
        price_cents=25_000,
        initial_stock=4,
        description="Solid walnut",
    )
    assert created["seller_id"] == seller["id"] and created["version"] == 1

    # with an Idempotency-Key a retried listing makes one product; the key with another body
    # is a 422 that lists nothing
    shelves = unique("shelves-")
    listing = {"name": "Pine shelf", "category": shelves, "price_cents": 5_000, "initial_stock": 2}
    keyed_listing = {**seller["headers"], "Idempotency-Key": "list-1"}
    shelf = ok(await http.post("/v1/products", json=listing, headers=keyed_listing), 201)
    again = ok(await http.post("/v1/products", json=listing, headers=keyed_listing), 201)
    assert again == shelf
    other_body = {**listing, "initial_stock": 3}
    reused = await http.post("/v1/products", json=other_body, headers=keyed_listing)
    assert assert_problem(reused, 422)["code"] == "idempotency_key_reused"
    listed = ok(await http.get("/v1/products", params={"category": shelves}))
    assert [p["id"] for p in listed["items"]] == [shelf["id"]]
    assert ok(await http.get(f"/v1/products/{shelf['id']}/stock"))["available"] == 2
    assert created["active"] is True and created["description"] == "Solid walnut"
    path = f"/v1/products/{created['id']}"

    # PATCH reprices and bumps the version, keeping the rest
    repriced = ok(await http.patch(path, json={"price_cents": 19_900}, headers=seller["headers"]))
    assert repriced == {**created, "price_cents": 19_900, "version": 2}
    assert ok(await http.get(path)) == repriced

    # PUT replaces every field (description back to its default)
    replaced = ok(
        await http.put(
            path,
            json={"name": "Oak desk", "category": category, "price_cents": 21_000},
            headers=seller["headers"],
        )
    )
    assert replaced == {
        **created,
        "name": "Oak desk",
        "description": "",
        "price_cents": 21_000,
        "version": 3,
    }

    # restock, and a write-off below zero is a 409 that changes nothing
    stock_path = f"{path}/stock"
    restocked = ok(await http.post(stock_path, json={"delta": 6}, headers=seller["headers"]))
    assert restocked["product_id"] == created["id"]
    assert restocked["available"] == 10 and restocked["reserved"] == 0
    written_off = ok(await http.post(stock_path, json={"delta": -3}, headers=seller["headers"]))
    assert written_off["available"] == 7
    too_many = await http.post(stock_path, json={"delta": -8}, headers=seller["headers"])
    assert_problem(too_many, 409)
    assert ok(await http.get(stock_path))["available"] == 7

    # with an Idempotency-Key a retried restock is made once; the key with another delta is a
    # 422, and a blank key a 422, neither changing anything
    keyed = {**seller["headers"], "Idempotency-Key": "restock-1"}
    first = ok(await http.post(stock_path, json={"delta": 4}, headers=keyed))
    retried = ok(await http.post(stock_path, json={"delta": 4}, headers=keyed))
    assert first["available"] == retried["available"] == 11
    reused = assert_problem(await http.post(stock_path, json={"delta": 5}, headers=keyed), 422)
    assert reused["code"] == "idempotency_key_reused"
    blank = {**seller["headers"], "Idempotency-Key": ""}
    assert_problem(await http.post(stock_path, json={"delta": 5}, headers=blank), 422)
    assert ok(await http.get(stock_path))["available"] == 11
    written_off = ok(await http.post(stock_path, json={"delta": -4}, headers=seller["headers"]))
    assert written_off["available"] == 7

    # a sale shows on the dashboard
    assert await dashboard_of(http, seller) == {
        "seller_id": seller["id"],
        "orders_count": 0,
        "items_sold": 0,
        "revenue_cents": 0,
        "open_orders": 0,
        "as_of": None,
    }
    sold = await settled_order(http, buyer, await checkout(http, buyer, [(created["id"], 2)]))
    assert sold["status"] == "confirmed" and sold["total_cents"] == 2 * 21_000
    assert sold["items"][0]["product_version"] == 3
    board = await eventually(lambda: dashboard_of(http, seller), lambda b: b["orders_count"] == 1)
    assert board["seller_id"] == seller["id"]
    assert board["items_sold"] == 2 and board["revenue_cents"] == 42_000
    assert board["open_orders"] == 1
    assert board["as_of"] is not None
    datetime.fromisoformat(board["as_of"])
    assert ok(await http.get(stock_path))["available"] == 5

    # DELETE deactivates: still readable, gone from search, checkout ends product_unavailable
    deactivated = ok(await http.delete(path, headers=seller["headers"]))
    assert deactivated == {**replaced, "active": False, "version": 4}
    assert ok(await http.get(path)) == deactivated
    listed = ok(await http.get("/v1/products", params={"category": category}))
    assert listed["items"] == []
    refused = await settled_order(http, buyer, await checkout(http, buyer, [(created["id"], 1)]))
    assert refused["status"] == "cancelled"
    assert refused["failure_reason"] == "product_unavailable"
    assert ok(await http.get(stock_path))["available"] == 5
    assert ok(await http.get(stock_path))["reserved"] == 0
    board = await dashboard_of(http, seller)
    assert board["orders_count"] == 1 and board["revenue_cents"] == 42_000
    await audit_ok(http)


async def test_carrier_journey(http: httpx.AsyncClient) -> None:
    admin = await admin_headers(http)
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")

    # only an admin creates carriers
    carrier_body = {
        "email": f"{unique('carrier-')}@example.com",
        "password": PASSWORD,
        "name": "Carrier",
        "role": "carrier",
    }
    assert_problem(await http.post("/v1/users", json=carrier_body), 401)
    assert_problem(await http.post("/v1/users", json=carrier_body, headers=buyer["headers"]), 403)
    made = ok(await http.post("/v1/users", json=carrier_body, headers=admin), 201)
    assert made["role"] == "carrier"
    carrier_token = await login(http, carrier_body["email"], PASSWORD)
    carrier = {"Authorization": f"Bearer {carrier_token}"}
    assert ok(await http.get("/v1/users/me", headers=carrier))["role"] == "carrier"

    product = await create_product(http, seller, price_cents=700, initial_stock=5)
    order = await settled_order(http, buyer, await checkout(http, buyer, [(product["id"], 2)]))
    assert order["status"] == "confirmed"
    await eventually(lambda: dashboard_of(http, seller), lambda b: b["open_orders"] == 1)
    shipment = ok(await http.get(f"/v1/orders/{order['id']}/shipment", headers=buyer["headers"]))
    shipment_path = f"/v1/shipments/{shipment['id']}"

    # delivered before shipped is a conflict; shipped, then delivered
    assert_problem(
        await http.patch(shipment_path, json={"status": "delivered"}, headers=carrier), 409
    )
    shipped = ok(await http.patch(shipment_path, json={"status": "shipped"}, headers=carrier))
    assert shipped["id"] == shipment["id"] and shipped["status"] == "shipped"
    assert {p["status"] for p in shipped["packages"]} == {"shipped"}
    order_path = f"/v1/orders/{order['id']}"
    assert ok(await http.get(order_path, headers=buyer["headers"]))["status"] == "shipped"
    # repeating the current status is a no-op (a carrier's retry)
    repeated = await http.patch(shipment_path, json={"status": "shipped"}, headers=carrier)
    assert ok(repeated) == shipped

    # too late to cancel; nothing changed
    assert_problem(await http.post(f"{order_path}/cancel", headers=buyer["headers"]), 409)
    assert ok(await http.get(order_path, headers=buyer["headers"]))["status"] == "shipped"
    stock = ok(await http.get(f"/v1/products/{product['id']}/stock"))
    assert stock["available"] == 3 and stock["reserved"] == 0

    # no longer open for the seller, still sold
    board = await eventually(lambda: dashboard_of(http, seller), lambda b: b["open_orders"] == 0)
    assert board["orders_count"] == 1 and board["items_sold"] == 2
    assert board["revenue_cents"] == 1400

    delivered = ok(await http.patch(shipment_path, json={"status": "delivered"}, headers=carrier))
    assert delivered["status"] == "delivered"
    assert {p["status"] for p in delivered["packages"]} == {"delivered"}
    final = ok(await http.get(order_path, headers=buyer["headers"]))
    assert final["status"] == "delivered"
    assert ok(await http.get(f"{order_path}/shipment", headers=buyer["headers"])) == delivered
    assert_problem(await http.post(f"{order_path}/cancel", headers=buyer["headers"]), 409)
    board = await eventually(
        lambda: dashboard_of(http, seller),
        lambda b: b["open_orders"] == 0 and b["orders_count"] == 1,
    )
    assert board["revenue_cents"] == 1400
    await audit_ok(http)


async def test_declined_and_flaky_cards(http: httpx.AsyncClient, served: dict[str, Any]) -> None:
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    product = await create_product(http, seller, price_cents=1500, initial_stock=3)
    stock_path = f"/v1/products/{product['id']}/stock"

    declined = await settled_order(
        http, buyer, await checkout(http, buyer, [(product["id"], 2)], card="tok_declined")
    )
    assert declined["status"] == "cancelled"
    assert declined["failure_reason"] == "payment_declined"
    stock = ok(await http.get(stock_path))
    assert stock["available"] == 3 and stock["reserved"] == 0
    payment = await payment_of(served, declined["id"])
    assert payment is None or payment.captured_cents == payment.refunded_cents

    flaky = await settled_order(
        http, buyer, await checkout(http, buyer, [(product["id"], 2)], card="tok_error")
    )
    assert flaky["status"] == "confirmed" and flaky["failure_reason"] is None
    assert ok(await http.get(stock_path))["available"] == 1
    assert (await payment_of(served, flaky["id"])).captured_cents == 3000

    # out of stock now: one unit left
    short = await settled_order(http, buyer, await checkout(http, buyer, [(product["id"], 2)]))
    assert short["status"] == "cancelled" and short["failure_reason"] == "out_of_stock"
    assert ok(await http.get(stock_path))["available"] == 1


async def test_audit_after_journeys(http: httpx.AsyncClient) -> None:
    report = await audit_ok(http)
    assert report["checks"], report
    for name, check in report["checks"].items():
        assert check["ok"] is True, (name, check)


async def test_a_buyers_orders_page_newest_first_across_coordinators(
    http: httpx.AsyncClient,
) -> None:
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    other = await signup(http, "buyer")
    product = await create_product(http, seller, initial_stock=20)
    placed = []
    for _ in range(7):  # their ids spread over the coordinators
        placed.append(
            await settled_order(http, buyer, await checkout(http, buyer, [(product["id"], 1)]))
        )
    theirs = await settled_order(http, other, await checkout(http, other, [(product["id"], 1)]))

    pages = await all_pages(http, "/v1/orders", {"limit": 3}, buyer["headers"])
    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    newest_first = sorted(placed, key=lambda o: (o["created_at"], o["id"]), reverse=True)
    assert ids_of(pages) == [o["id"] for o in newest_first]
    assert pages[-1]["next_cursor"] is None
    exact = await all_pages(http, "/v1/orders", {"limit": 7}, buyer["headers"])
    assert [len(page["items"]) for page in exact] == [7]  # no empty page after a full one

    # A cursor must be one of the caller's own orders.
    for cursor in (theirs["id"], "ord_" + "0" * 32, "not-an-id"):
        reply = await http.get("/v1/orders", params={"cursor": cursor}, headers=buyer["headers"])
        assert_problem(reply, 422)
