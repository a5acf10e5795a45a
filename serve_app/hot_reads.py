"""``GET /v1/products/{id}`` answered ahead of FastAPI when this replica holds the product.

Browsing reads products far more often than anything else is asked of the gateway. When the
replica holds a leased copy of the product (actors/product_reads.py), the answer is already
known: its body is serialized once per product version (``schemas.product_json``). Routing,
dependency solving and the exception layers then cost the replica more than the answer itself.
This middleware sends such answers directly, with the status, headers and body the route would
send. Everything else, including every product read it cannot answer from a held copy (unknown,
malformed or not yet held ids), goes on to FastAPI unchanged, so errors and the first read of a
product keep the route's behaviour.

It sits inside ``RequestMetrics`` and ``BodyLimit``: the answer is counted under the route's
template, and a body over the limit is still refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace.domain.catalog import Product
from serve_app.etags import etag
from serve_app.schemas import product_json

PRODUCT_ROUTE = "/v1/products/{product_id}"
PREFIX = "/v1/products/"


@dataclass(frozen=True)
class RouteTemplate:
    """Stands in ``scope["route"]`` where the router would put the matched route: what
    ``RequestMetrics`` labels a request with."""

    path: str


_ROUTE = RouteTemplate(PRODUCT_ROUTE)


def route_path(scope: Scope) -> str:
    """The path the router matches: ``path`` less the ``root_path`` it is mounted under.

    The same rule as Starlette's router (``starlette._utils.get_route_path``, which is private,
    so it is not imported), so that this middleware and the route agree on which requests are
    product reads whatever prefix Serve mounts the application under.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path


class HeldProductReads:
    """Send held products without entering FastAPI's router.

    ``held`` is a lookup of this replica's copies that never waits (``client.held_product``).
    """

    def __init__(self, app: ASGIApp, held: Callable[[str], Product | None]) -> None:
        self.app = app
        self.held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held = self.held
        if scope["type"] == "http" and scope["method"] == "GET":
            path = route_path(scope)
            if path.startswith(PREFIX):
                product_id = path[len(PREFIX) :]
                product = held(product_id) if product_id and "/" not in product_id else None
                if product is not None:
                    body = product_json(product)
                    scope["route"] = _ROUTE
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json"),
                                (b"etag", etag(product.version).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
