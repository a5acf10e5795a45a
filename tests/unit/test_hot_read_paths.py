"""The held-product middleware strips a mount prefix exactly as Starlette's router does."""

from __future__ import annotations

import pytest
from starlette._utils import get_route_path  # the router's own rule, to compare against

from serve_app.hot_reads import route_path

pytestmark = pytest.mark.unit

CASES = [
    ("/v1/products/p1", ""),
    ("/v1/products/p1", "/shop"),
    ("/shop/v1/products/p1", "/shop"),
    ("/shop", "/shop"),
    ("/shopping/v1/products/p1", "/shop"),
    ("/shop/", "/shop"),
]


@pytest.mark.parametrize(("path", "root_path"), CASES)
def test_route_path_is_the_routers(path: str, root_path: str) -> None:
    scope = {"type": "http", "path": path, "root_path": root_path}
    assert route_path(scope) == get_route_path(scope)


def test_a_mount_prefix_is_stripped_only_at_a_segment_boundary() -> None:
    assert route_path({"path": "/shop/v1/products/p1", "root_path": "/shop"}) == "/v1/products/p1"
    assert route_path({"path": "/shopping/v1", "root_path": "/shop"}) == "/shopping/v1"
    assert route_path({"path": "/v1/products/p1"}) == "/v1/products/p1"
