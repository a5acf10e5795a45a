"""Product reads over HTTP: whether FastAPI's route or the held-copy path answers
(serve_app/hot_reads.py), a client sees the same answer, counted under the route."""

import asyncio

import httpx
import pytest

from tests.e2e.conftest import signup
from tests.e2e.support import create_product, ok, scrape_with

pytestmark = pytest.mark.e2e

LABEL = 'method="GET",route="/v1/products/{product_id}",status="200"}'


async def test_repeated_product_reads_answer_the_same_bytes_and_are_counted(
    http: httpx.AsyncClient,
) -> None:
    seller = await signup(http, "seller")
    product = await create_product(http, seller, price_cents=4200)
    path = f"/v1/products/{product['id']}"
    # The first read fills the replica's copy; most of the rest are answered from it.
    replies = [await http.get(path) for _ in range(5)]
    replies += await asyncio.gather(*(http.get(path) for _ in range(40)))
    first = replies[0]
    assert first.status_code == 200 and first.json() == product
    for reply in replies:
        assert reply.status_code == 200
        assert reply.content == first.content
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["content-length"] == str(len(first.content))

    # A reprice, once answered, is what every later read sees.
    repriced = ok(await http.patch(path, json={"price_cents": 3900}, headers=seller["headers"]))
    later = await asyncio.gather(*(http.get(path) for _ in range(20)))
    assert all(reply.json() == repriced for reply in later)

    # Every answer is counted under its route: nothing that was answered 200 is "unmatched"
    # (summed over every replica; FastAPI's own pages count under their paths).
    metrics = await scrape_with(http, LABEL)
    assert 'route="unmatched",status="200"' not in metrics
