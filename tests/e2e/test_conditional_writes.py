"""Conditional product writes over real HTTP: every product answer carries its version as an
ETag, and a write with If-Match changes the product only from a version it names; otherwise 412
`version_mismatch` and nothing changes (the lost update of two sellers' tabs, prevented)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import signup
from tests.e2e.support import assert_problem, create_product, ok, order_body, unique

pytestmark = pytest.mark.e2e


async def read(http: httpx.AsyncClient, product_id: str) -> httpx.Response:
    reply = await http.get(f"/v1/products/{product_id}")
    ok(reply)
    return reply


async def test_every_product_answer_carries_its_version_as_an_etag(
    http: httpx.AsyncClient,
) -> None:
    seller = await signup(http, "seller")
    created = await http.post(
        "/v1/products",
        json={"name": "Tagged lamp", "category": "lamps", "price_cents": 900, "initial_stock": 1},
        headers=seller["headers"],
    )
    assert ok(created, 201)["version"] == 1 and created.headers["etag"] == '"1"'
    product_id = created.json()["id"]
    for _ in range(2):  # the first read asks the shard, the next may be a held copy's answer
        assert (await read(http, product_id)).headers["etag"] == '"1"'
    patched = await http.patch(
        f"/v1/products/{product_id}", json={"price_cents": 950}, headers=seller["headers"]
    )
    assert ok(patched)["version"] == 2 and patched.headers["etag"] == '"2"'
    assert (await read(http, product_id)).headers["etag"] == '"2"'


async def test_a_write_from_a_stale_version_is_refused_and_changes_nothing(
    http: httpx.AsyncClient,
) -> None:
    seller = await signup(http, "seller")
    product: dict[str, Any] = await create_product(http, seller, price_cents=1000)
    path = f"/v1/products/{product['id']}"
    tab_a = (await read(http, product["id"])).headers["etag"]
    tab_b = tab_a  # two tabs read the same version
    first = await http.patch(
        path, json={"price_cents": 1100}, headers={**seller["headers"], "If-Match": tab_a}
    )
    assert ok(first)["price_cents"] == 1100
    lost = await http.patch(
        path, json={"price_cents": 900}, headers={**seller["headers"], "If-Match": tab_b}
    )
    problem = assert_problem(lost, 412)
    assert problem["code"] == "version_mismatch" and problem["version"] == 2, problem
    replaced = await http.put(
        path,
        json={"name": "Stale", "category": "misc", "price_cents": 1},
        headers={**seller["headers"], "If-Match": tab_b},
    )
    assert_problem(replaced, 412)
    withdrawn = await http.delete(path, headers={**seller["headers"], "If-Match": tab_b})
    assert_problem(withdrawn, 412)
    after = (await read(http, product["id"])).json()
    assert after["price_cents"] == 1100 and after["version"] == 2 and after["active"] is True


@pytest.mark.parametrize(
    ("if_match", "applies"),
    [
        ('"1"', True),
        ('"7", "1"', True),  # any of a list
        ("*", True),  # the product exists
        ('W/"1"', False),  # a weak tag never matches under strong comparison
        ("1", False),  # not a quoted tag
        ('"x"', False),
    ],
)
async def test_if_match_forms(http: httpx.AsyncClient, if_match: str, applies: bool) -> None:
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    reply = await http.patch(
        f"/v1/products/{product['id']}",
        json={"price_cents": 1234},
        headers={**seller["headers"], "If-Match": if_match},
    )
    if applies:
        assert ok(reply)["version"] == 2
    else:
        assert_problem(reply, 412)
        assert (await read(http, product["id"])).json()["version"] == 1


async def test_the_condition_comes_after_who_may_write(http: httpx.AsyncClient) -> None:
    """A stranger hears 403 and an unknown product 404, whatever the If-Match says."""
    seller, other = await signup(http, "seller"), await signup(http, "seller")
    product = await create_product(http, seller)
    stale = {"If-Match": '"99"'}
    assert_problem(
        await http.patch(
            f"/v1/products/{product['id']}",
            json={"price_cents": 1},
            headers={**other["headers"], **stale},
        ),
        403,
    )
    assert_problem(
        await http.patch(
            "/v1/products/prd_" + "0" * 32,
            json={"price_cents": 1},
            headers={**seller["headers"], **stale},
        ),
        404,
    )


async def test_a_checkout_at_a_total_the_buyer_no_longer_sees_is_refused(
    http: httpx.AsyncClient,
) -> None:
    """The price the buyer saw is the price charged, or nothing is ordered: with
    `expected_total_cents`, a reprice in between answers 409 `price_changed` with the new
    items and total."""
    seller, buyer = await signup(http, "seller"), await signup(http, "buyer")
    product = await create_product(http, seller, price_cents=1000, initial_stock=5)
    ok(
        await http.patch(
            f"/v1/products/{product['id']}", json={"price_cents": 1200}, headers=seller["headers"]
        )
    )
    body = order_body([(product["id"], 2)])
    key = {"Idempotency-Key": unique("price-")}
    refused = await http.post(
        "/v1/orders",
        json={**body, "expected_total_cents": 2000},
        headers={**buyer["headers"], **key},
    )
    problem = assert_problem(refused, 409)
    assert problem["code"] == "price_changed" and problem["total_cents"] == 2400, problem
    assert [item["unit_price_cents"] for item in problem["items"]] == [1200]
    stock = ok(await http.get(f"/v1/products/{product['id']}/stock"))
    assert stock["available"] == 5 and stock["reserved"] == 0
    assert ok(await http.get("/v1/orders", headers=buyer["headers"]))["items"] == []
    # Agreeing to the new total, with the same key, orders at it.
    agreed = await http.post(
        "/v1/orders",
        json={**body, "expected_total_cents": 2400},
        headers={**buyer["headers"], **key},
    )
    assert ok(agreed, 201)["total_cents"] == 2400
