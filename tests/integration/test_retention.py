"""Retention through real Ray actors, on SQLite and PostgreSQL: a buyer's orders page in the
store across two coordinators, and an Idempotency-Key reused after its (tiny) window places a
new order that routes, lists and cancels like any other, with the audit clean."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.users import Principal, Role
from tests.integration.market import build_market

pytestmark = pytest.mark.integration

TTL_S = 2.0


async def _all_pages(client: Any, buyer_id: str, limit: int) -> list[list[Order]]:
    """Page as ``GET /v1/orders`` does: ``limit + 1`` after the previous page's last order."""
    pages: list[list[Order]] = []
    after = None
    while True:
        orders = await client.list_orders(buyer_id, limit=limit + 1, after=after)
        pages.append(orders[:limit])
        if len(orders) <= limit:
            return pages
        after = orders[limit - 1]
        assert len(pages) < 50, "pagination does not end"


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_orders_page_in_the_store_and_keys_expire(
    make_marketplace: Any, database: str
) -> None:
    runtime = await make_marketplace(
        database, order_coordinators=2, idempotency_ttl_s=TTL_S, retention_interval_s=0.1
    )
    client = runtime.client
    market = await build_market(client, stock=[50], buyers=2)
    buyer, other = market.buyers
    line = [{"product_id": market.products[0].id, "quantity": 1}]

    placed = [await client.place_order(buyer.id, f"k{i}", items=line) for i in range(7)]
    await client.place_order(other.id, "k0", items=line)  # same key, another buyer
    newest_first = sorted(placed, key=lambda o: (o.created_at, o.id), reverse=True)
    pages = await _all_pages(client, buyer.id, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [o.id for page in pages for o in page] == [o.id for o in newest_first]

    # inside the window the key stands for its order; after it, for a new one
    first = placed[0]
    assert await client.place_order(buyer.id, "k0", items=line) == first
    await asyncio.sleep(TTL_S + 0.2)
    renewed = await client.place_order(buyer.id, "k0", items=line)
    assert renewed.id != first.id and renewed.status is OrderStatus.CONFIRMED
    assert await client.place_order(buyer.id, "k0", items=line) == renewed
    me = Principal(id=buyer.id, role=Role.BUYER)
    assert await client.get_order(me, renewed.id) == renewed
    listed = [o.id for page in await _all_pages(client, buyer.id, 3) for o in page]
    assert listed[0] == renewed.id and len(listed) == 8
    cancelled = await client.cancel_order(me, renewed.id)
    assert cancelled.status is OrderStatus.CANCELLED
    stock = await client.get_stock(market.products[0].id)
    assert stock.available == 50 - 8  # 7 + the other buyer's; the renewed one restocked

    await client.flush()
    report = await client.audit()
    assert report.ok, report.summary()
