"""The seller view repairs pushes it never got (a coordinator that crashed before pushing):
every few seconds from the orders changed lately, and from every order on a full catch-up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from actors.directory import SELLERS
from actors.protocols import SellerViewApi
from marketplace.store.rows import utcnow
from marketplace.store.tables import orders, seller_order_facts
from tests.integration.market import build_market

pytestmark = pytest.mark.integration


async def _fact_version(client: Any, order_id: str) -> int:
    async with client.engine.connect() as conn:
        query = select(seller_order_facts.c.order_version).where(
            seller_order_facts.c.order_id == order_id
        )
        return int((await conn.execute(query)).scalar_one())


async def test_the_seller_view_repairs_lost_pushes(make_marketplace: Any) -> None:
    runtime = await make_marketplace()
    client = runtime.client
    market = await build_market(client, stock=[5, 5], buyers=1)
    recent, old = [
        await client.place_order(
            market.buyers[0].id, f"k{i}", items=[{"product_id": product.id, "quantity": 1}]
        )
        for i, product in enumerate(market.products)
    ]
    await client.flush()
    assert await _fact_version(client, recent.id) == recent.version
    assert await _fact_version(client, old.id) == old.version

    # Behind the actors' backs: both orders move on a version that was never pushed, one of
    # them just now and one (as the store says) an hour ago.
    async with client.engine.begin() as conn:
        for order, when in ((recent, utcnow()), (old, utcnow() - timedelta(hours=1))):
            await conn.execute(
                update(orders)
                .where(orders.c.id == order.id)
                .values(version=order.version + 1, updated_at=when)
            )

    # The frequent catch-up (every CATCH_UP_INTERVAL_S) reads the recent one only.
    for _ in range(300):
        if await _fact_version(client, recent.id) == recent.version + 1:
            break
        await asyncio.sleep(0.1)
    assert await _fact_version(client, recent.id) == recent.version + 1
    assert await _fact_version(client, old.id) == old.version
    # A full catch-up (as every audit makes, and the view every few minutes) reads them all.
    await client.directory.every(SELLERS)[0].call(SellerViewApi.catch_up)
    assert await _fact_version(client, old.id) == old.version + 1
