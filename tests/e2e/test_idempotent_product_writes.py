"""Idempotent product writes over real HTTP: PATCH, PUT and DELETE /v1/products/{id} with an
`Idempotency-Key` are made once. A retry with the same key and body answers the product as that
write left it (same version, same ETag), even when its If-Match no longer matches, and adds no
second event to the outbox; the key with another body, another kind of write or another
product is 422 `idempotency_key_reused`; keys are per caller."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, make_url, select

from marketplace.store.tables import outbox
from tests.e2e.conftest import signup
from tests.e2e.support import admin_headers, assert_problem, create_product, ok, unique

pytestmark = pytest.mark.e2e


def events_of(served: dict[str, Any], product_id: str) -> dict[str, int]:
    """The outbox's events about ``product_id``, counted by type."""
    url = make_url(served["settings"].database_url).set(drivername="sqlite")  # not aiosqlite
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.type, func.count())
                .where(outbox.c.subject == product_id)
                .group_by(outbox.c.type)
            )
            return {kind: int(count) for kind, count in rows}
    finally:
        engine.dispose()


def keyed(seller: dict[str, Any], key: str, **more: str) -> dict[str, str]:
    return {**seller["headers"], "Idempotency-Key": key, **more}


async def test_a_retried_patch_bumps_the_version_once(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("patch-")
    first = await http.patch(path, json={"price_cents": 1100}, headers=keyed(seller, key))
    assert ok(first)["version"] == 2 and first.headers["etag"] == '"2"'
    for _ in range(3):
        again = await http.patch(path, json={"price_cents": 1100}, headers=keyed(seller, key))
        assert ok(again) == first.json() and again.headers["etag"] == '"2"'
    assert ok(await http.get(path))["version"] == 2
    assert events_of(served, product["id"]) == {"product.created": 1, "product.updated": 1}


async def test_a_retry_answers_the_write_as_it_left_the_product(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    """A later change does not alter a retry's answer, and a retry whose If-Match no longer
    matches still answers the write it stands for (200, not 412: that write was made)."""
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("patch-")
    first = await http.patch(
        path, json={"price_cents": 1100}, headers=keyed(seller, key, **{"If-Match": '"1"'})
    )
    assert ok(first)["version"] == 2
    later = await http.patch(path, json={"name": "Renamed"}, headers=seller["headers"])
    assert ok(later)["version"] == 3
    retry = await http.patch(
        path, json={"price_cents": 1100}, headers=keyed(seller, key, **{"If-Match": '"1"'})
    )
    assert ok(retry) == first.json() and retry.headers["etag"] == '"2"'
    # Without the key, the same condition is refused.
    stale = await http.patch(
        path, json={"price_cents": 1100}, headers={**seller["headers"], "If-Match": '"1"'}
    )
    assert assert_problem(stale, 412)["code"] == "version_mismatch"
    current = ok(await http.get(path))
    assert current["version"] == 3 and current["name"] == "Renamed"
    assert events_of(served, product["id"]) == {"product.created": 1, "product.updated": 2}


async def test_the_key_with_another_write_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    other = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("patch-")
    ok(await http.patch(path, json={"price_cents": 1100}, headers=keyed(seller, key)))
    refusals = [
        await http.patch(path, json={"price_cents": 1200}, headers=keyed(seller, key)),
        await http.patch(
            f"/v1/products/{other['id']}", json={"price_cents": 1100}, headers=keyed(seller, key)
        ),
        await http.put(
            path,
            json={"name": "Other", "category": "misc", "price_cents": 1100},
            headers=keyed(seller, key),
        ),
        await http.delete(path, headers=keyed(seller, key)),
    ]
    for refused in refusals:
        assert assert_problem(refused, 422)["code"] == "idempotency_key_reused"
    assert ok(await http.get(path))["version"] == 2
    unchanged = ok(await http.get(f"/v1/products/{other['id']}"))
    assert unchanged["version"] == 1 and unchanged["price_cents"] == 1000
    assert events_of(served, product["id"]) == {"product.created": 1, "product.updated": 1}
    assert events_of(served, other["id"]) == {"product.created": 1}


async def test_a_retried_put_replaces_once(http: httpx.AsyncClient, served: dict[str, Any]) -> None:
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("put-")
    body = {"name": "Replaced lamp", "category": "lamps", "price_cents": 1500}
    first = await http.put(path, json=body, headers=keyed(seller, key))
    assert ok(first)["version"] == 2 and first.headers["etag"] == '"2"'
    again = await http.put(path, json=body, headers=keyed(seller, key))
    assert ok(again) == first.json() and again.headers["etag"] == '"2"'
    refused = await http.put(path, json={**body, "price_cents": 1}, headers=keyed(seller, key))
    assert assert_problem(refused, 422)["code"] == "idempotency_key_reused"
    assert ok(await http.get(path))["version"] == 2
    assert events_of(served, product["id"]) == {"product.created": 1, "product.updated": 1}


async def test_a_retried_delete_withdraws_once(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("delete-")
    first = await http.delete(path, headers=keyed(seller, key, **{"If-Match": '"1"'}))
    assert ok(first)["version"] == 2 and ok(first)["active"] is False
    again = await http.delete(path, headers=keyed(seller, key, **{"If-Match": '"1"'}))
    assert ok(again) == first.json() and again.headers["etag"] == '"2"'
    refused = await http.patch(path, json={"price_cents": 5}, headers=keyed(seller, key))
    assert assert_problem(refused, 422)["code"] == "idempotency_key_reused"
    assert ok(await http.get(path))["version"] == 2
    assert events_of(served, product["id"]) == {"product.created": 1, "product.deactivated": 1}


async def test_keys_are_per_caller(http: httpx.AsyncClient) -> None:
    """Another caller's same key is another write; it opens nobody's product to a stranger."""
    seller, stranger = await signup(http, "seller"), await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("shared-")
    ok(await http.patch(path, json={"price_cents": 1100}, headers=keyed(seller, key)))
    admin = {**await admin_headers(http), "Idempotency-Key": key}
    assert ok(await http.patch(path, json={"price_cents": 1100}, headers=admin))["version"] == 3
    forbidden = await http.patch(path, json={"price_cents": 1100}, headers=keyed(stranger, key))
    assert_problem(forbidden, 403)
    assert ok(await http.get(path))["version"] == 3


async def test_a_refused_write_stores_no_key(http: httpx.AsyncClient) -> None:
    """A write refused by its If-Match made nothing, so its key stands for nothing yet."""
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=1000)
    path, key = f"/v1/products/{product['id']}", unique("late-")
    refused = await http.patch(
        path, json={"price_cents": 1100}, headers=keyed(seller, key, **{"If-Match": '"9"'})
    )
    assert_problem(refused, 412)
    made = await http.patch(
        path, json={"price_cents": 1100}, headers=keyed(seller, key, **{"If-Match": '"1"'})
    )
    assert ok(made)["version"] == 2


async def test_the_header_is_documented_on_the_three_writes(http: httpx.AsyncClient) -> None:
    document = ok(await http.get("/openapi.json"))
    operations = document["paths"]["/v1/products/{product_id}"]
    for method in ("patch", "put", "delete"):
        headers = {
            p["name"] for p in operations[method].get("parameters", []) if p["in"] == "header"
        }
        assert {"Idempotency-Key", "If-Match"} <= headers, (method, headers)
