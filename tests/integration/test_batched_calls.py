"""Batched actor calls (actors/batching.py) through real Ray actors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.directory import CATALOG, SELLERS
from actors.protocols import CatalogShardApi, SellerViewApi
from marketplace.domain.catalog import ProductPatch
from marketplace.domain.errors import NotFound
from marketplace.domain.orders import OrderStatus
from marketplace.domain.users import Principal, Role
from tests.unit.factories import SELLER_A, make_item, make_order

pytestmark = pytest.mark.integration


async def test_the_newest_snapshot_wins_inside_one_batch_of_the_seller_view(
    shared_marketplace: Any,
) -> None:
    runtime = shared_marketplace
    directory = runtime.client.directory
    view = directory.every(SELLERS)[0]
    item = make_item(1, seller_id=SELLER_A, quantity=2, unit_price_cents=500)
    confirmed = make_order((item,), OrderStatus.CONFIRMED, n=7001, version=2)
    cancelled = confirmed.model_copy(update={"status": OrderStatus.CANCELLED, "version": 3})

    # Both snapshots in one Ray call, the newer first: applied one after the other in that
    # order, the stale "confirmed" would be counted last and the dashboard would show a sale.
    answers = await view.call(
        SellerViewApi.run_batch, [("apply", (cancelled,), {}), ("apply", (confirmed,), {})]
    )
    assert answers == [(True, 1), (True, 0)]
    dashboard = await runtime.client.dashboard(SELLER_A)
    assert (dashboard.orders_count, dashboard.open_orders, dashboard.revenue_cents) == (0, 0, 0)

    assert await view.call(SellerViewApi.apply, confirmed) == 0  # stale on its own, too
    delivered = cancelled.model_copy(update={"status": OrderStatus.DELIVERED, "version": 4})
    assert await view.call(SellerViewApi.apply, delivered) == 1
    dashboard = await runtime.client.dashboard(SELLER_A)
    assert (dashboard.orders_count, dashboard.items_sold, dashboard.revenue_cents) == (1, 2, 1000)


async def test_calls_of_one_turn_share_a_ray_call_and_keep_their_own_answers(
    shared_marketplace: Any,
) -> None:
    runtime = shared_marketplace
    client = runtime.client
    seller = await client.register("batch-seller@example.com", "password-1", "S", Role.SELLER)
    principal = Principal(id=seller.id, role=seller.role)
    batcher = client.directory.batched(CATALOG, 0)
    before = batcher.batches
    missing = "prd_" + "0" * 32
    answers = await asyncio.gather(
        batcher.call(CatalogShardApi.get_products, [missing]),
        batcher.call(
            CatalogShardApi.update_product, principal, missing, ProductPatch(price_cents=5)
        ),
        batcher.call(CatalogShardApi.ready),
        return_exceptions=True,
    )
    assert batcher.batches == before + 1
    assert answers[0] == {}
    assert isinstance(answers[1], NotFound)  # the domain error itself, not a RayTaskError
    assert isinstance(answers[2], dict) and answers[2]["kind"] == "CatalogShard"
