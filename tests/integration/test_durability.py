"""Durability modes: sync survives a kill with state rebuilt from the store; async and none
run the same checkout path (async commits behind the reply; none keeps memory only)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import ray
from sqlalchemy import func, select

from marketplace.domain.errors import IdempotencyKeyReused, InsufficientStock
from marketplace.domain.orders import OrderStatus
from marketplace.store.tables import orders
from tests.integration.market import build_market, principal

pytestmark = pytest.mark.integration


async def _stored_orders(client: Any) -> int:
    async with client.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(orders))).scalar_one())


@pytest.mark.parametrize("durability", ["sync", "async", "none"])
async def test_checkouts_in_every_durability_mode(make_marketplace: Any, durability: str) -> None:
    runtime = await make_marketplace(durability=durability)
    client = runtime.client
    market = await build_market(client, stock=[6, 6], buyers=4)
    placed = await asyncio.gather(
        *(
            client.place_order(
                market.buyers[i % 4].id,
                f"k{i}",
                items=[{"product_id": market.products[i % 2].id, "quantity": 1}],
            )
            for i in range(16)
        )
    )
    confirmed = [o for o in placed if o.status is OrderStatus.CONFIRMED]
    assert len(confirmed) == 12  # 2 products x 6 units
    await client.flush()
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()
    stored = await _stored_orders(client)
    assert stored == (0 if durability == "none" else 16)


async def test_sync_state_survives_a_kill(make_marketplace: Any) -> None:
    runtime = await make_marketplace(inventory_partitions=1, catalog_shards=1)
    client = runtime.client
    market = await build_market(client, stock=[10], buyers=1)
    product, seller = market.products[0], principal(market.seller)
    await client.adjust_stock(seller, product.id, 5, request_id="restock-1")
    order = await client.place_order(
        market.buyers[0].id, "k", items=[{"product_id": product.id, "quantity": 4}]
    )
    assert order.status is OrderStatus.CONFIRMED
    before = await client.get_stock(product.id)

    namespace = runtime.settings.namespace
    for name in ("inventory-0", "catalog-0", "orders-0", "orders-1", "payments-0"):
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=False)

    assert await client.get_stock(product.id) == before  # stocked 15, sold 4
    assert before.stocked == 15 and before.sold == 4
    # The restock request id is remembered through the store: a retry applies nothing.
    assert await client.adjust_stock(seller, product.id, 5, request_id="restock-1") == before
    again = await client.place_order(
        market.buyers[0].id, "k", items=[{"product_id": product.id, "quantity": 4}]
    )
    assert again.id == order.id and again.status is OrderStatus.CONFIRMED
    assert (await client.get_stock(product.id)).sold == 4
    assert (await client.audit(max_pending_age_s=0)).ok


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_an_idempotency_key_changes_stock_once_across_a_restart(
    make_marketplace: Any, database: str
) -> None:
    runtime = await make_marketplace(database=database, inventory_partitions=1)
    client = runtime.client
    market = await build_market(client, stock=[10], buyers=0)
    product, seller = market.products[0], principal(market.seller)

    restocked = await client.adjust_stock(seller, product.id, 5, idempotency_key="restock-a")
    assert restocked.available == 15
    repeats = await asyncio.gather(
        *(client.adjust_stock(seller, product.id, 5, idempotency_key="restock-a") for _ in range(4))
    )
    assert {item.available for item in repeats} == {15}
    with pytest.raises(IdempotencyKeyReused):
        await client.adjust_stock(seller, product.id, 6, idempotency_key="restock-a")
    written_off = await client.adjust_stock(seller, product.id, -15, idempotency_key="clear")
    assert written_off.available == 0
    # The key is the seller's own: another key is another change.
    assert (await client.adjust_stock(seller, product.id, 2, idempotency_key="b")).available == 2

    namespace = runtime.settings.namespace
    ray.kill(ray.get_actor("inventory-0", namespace=namespace), no_restart=False)

    # Remembered through the store: a repeat applies nothing, even the write-off that no
    # longer fits what is left, and a repeat with another delta is still refused.
    assert (await client.adjust_stock(seller, product.id, 5, idempotency_key="restock-a")) == (
        await client.get_stock(product.id)
    )
    again = await client.adjust_stock(seller, product.id, -15, idempotency_key="clear")
    assert again == await client.get_stock(product.id) and again.available == 2
    with pytest.raises(IdempotencyKeyReused):
        await client.adjust_stock(seller, product.id, 7, idempotency_key="restock-a")
    with pytest.raises(InsufficientStock):
        await client.adjust_stock(seller, product.id, -15, idempotency_key="too-many")
    assert (await client.get_stock(product.id)).available == 2
    assert (await client.audit(max_pending_age_s=0)).ok
