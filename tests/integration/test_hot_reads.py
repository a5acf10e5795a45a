"""Product reads answered ahead of FastAPI from the replica's held copies (serve_app/hot_reads.py).

The middleware is driven with the real client of a real marketplace; behind it stands an ASGI
app that records what reached it, in place of FastAPI's routing.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from marketplace.domain.catalog import ProductPatch
from serve_app.hot_reads import PRODUCT_ROUTE, HeldProductReads
from serve_app.schemas import product_json
from tests.integration.market import build_market, principal

pytestmark = pytest.mark.integration


class Behind:
    """Stands where FastAPI's router would: records the paths that reached it, answers 418."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def get(app: HeldProductReads, path: str, method: str = "GET") -> tuple[Scope, list[Message]]:
    scope: Scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return scope, sent


async def test_held_products_are_answered_and_everything_else_passes_through(
    make_marketplace: Any,
) -> None:
    runtime = await make_marketplace(product_lease_s=2.0)
    client = runtime.client
    market = await build_market(client, stock=[3, 3], buyers=0)
    held, other = market.products
    behind = Behind()
    app = HeldProductReads(behind, held=client.held_product)

    # Not held yet: FastAPI's route reads it (and the client then holds it).
    _, sent = await get(app, f"/v1/products/{held.id}")
    assert sent[0]["status"] == 418 and behind.paths == [f"/v1/products/{held.id}"]

    fetched = await client.get_product(held.id)
    scope, sent = await get(app, f"/v1/products/{held.id}")
    body = product_json(fetched)
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"]) == {
        b"content-length": str(len(body)).encode(),
        b"content-type": b"application/json",
        b"etag": f'"{fetched.version}"'.encode(),  # as the route sends it
    }
    assert sent[1]["body"] == body
    assert scope["route"].path == PRODUCT_ROUTE  # what RequestMetrics labels it with
    assert len(behind.paths) == 1

    passing = [
        f"/v1/products/{other.id}",  # a product this replica does not hold
        f"/v1/products/{held.id}/stock",  # another route under the same prefix
        f"/v1/products/{held.id}/",
        "/v1/products/",
        "/v1/products/not-an-id",
    ]
    for path in passing:
        await get(app, path)
    await get(app, f"/v1/products/{held.id}", method="DELETE")
    assert behind.paths[1:] == [*passing, f"/v1/products/{held.id}"]

    # A write answered after the lease outlives every copy: the next read is not a held one.
    seller = principal(market.seller)
    await client.update_product(seller, held.id, ProductPatch(price_cents=777))
    _, sent = await get(app, f"/v1/products/{held.id}")
    assert sent[0]["status"] == 418
    assert (await client.get_product(held.id)).price_cents == 777
    _, sent = await get(app, f"/v1/products/{held.id}")
    assert sent[0]["status"] == 200 and b'"price_cents":777' in sent[1]["body"]
