"""Durability modes: sync survives a kill with state rebuilt from the store; async and none
run the same checkout path (async commits behind the reply; none keeps memory only)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import ray
from sqlalchemy import func, select

from actors.directory import CATALOG
from actors.protocols import CatalogShardApi
from marketplace.domain.catalog import ProductDraft, ProductPatch, listing_fingerprint
from marketplace.domain.errors import IdempotencyKeyReused, InsufficientStock, InvalidInput
from marketplace.domain.ids import product_id_for
from marketplace.domain.orders import OrderStatus
from marketplace.domain.users import Role
from marketplace.store.tables import orders, outbox, product_keys, product_write_keys, products
from tests.integration.market import build_market, principal, register

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
    runtime = await make_marketplace(order_coordinators=2)
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
    # Keys the gateway would refuse are refused here too, and change nothing.
    for bad in ({"idempotency_key": " "}, {"idempotency_key": "k" * 201}):
        with pytest.raises(InvalidInput):
            await client.adjust_stock(seller, product.id, 3, **bad)
    with pytest.raises(InvalidInput):
        await client.adjust_stock(seller, product.id, 3, idempotency_key="c", request_id="r")
    assert (await client.get_stock(product.id)).available == 2

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


async def _count(client: Any, table: Any) -> int:
    async with client.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_listing_key_lists_one_product_across_a_restart(
    make_marketplace: Any, database: str
) -> None:
    runtime = await make_marketplace(database=database, catalog_shards=1, inventory_partitions=1)
    client = runtime.client
    seller, other = (principal(u) for u in await register(client, Role.SELLER, 2))
    draft = ProductDraft(name="Blue kettle", category="kitchen", price_cents=2500)

    listed = await asyncio.gather(
        *(client.create_product(seller, draft, 7, idempotency_key="list-a") for _ in range(4))
    )
    assert {p.id for p in listed} == {product_id_for(seller.id, "list-a")}
    product = listed[0]
    assert (await client.get_stock(product.id)).stocked == 7
    assert await _count(client, products) == 1 and await _count(client, product_keys) == 1
    # The same key with another draft, or with other stock, is refused and changes nothing.
    with pytest.raises(IdempotencyKeyReused):
        await client.create_product(
            seller, draft.model_copy(update={"price_cents": 1}), 7, idempotency_key="list-a"
        )
    with pytest.raises(IdempotencyKeyReused):
        await client.create_product(seller, draft, 8, idempotency_key="list-a")
    # A key and a caller-chosen id together would let the key override the id unseen.
    with pytest.raises(InvalidInput):
        await client.create_product(
            seller, draft, 7, product_id="prd_chosen", idempotency_key="list-a"
        )
    # A repeat after the product changed answers the product as it is now.
    repriced = await client.update_product(seller, product.id, ProductPatch(price_cents=2000))
    assert await client.create_product(seller, draft, 7, idempotency_key="list-a") == repriced
    # Keys are per seller.
    theirs = await client.create_product(other, draft, 1, idempotency_key="list-a")
    assert theirs.id != product.id and theirs.seller_id == other.id

    # A first attempt that listed the product but never stocked it (its caller gave up
    # between the two calls): the retry completes the stock, once.
    half_id = product_id_for(seller.id, "list-b")
    shard = client.directory.route(CATALOG, half_id)
    await shard.call(
        CatalogShardApi.create_product,
        half_id,
        seller.id,
        draft,
        ("list-b", listing_fingerprint(draft, 3)),
    )
    assert (await client.get_stock(half_id)).stocked == 0
    completed = await client.create_product(seller, draft, 3, idempotency_key="list-b")
    assert completed.id == half_id and (await client.get_stock(half_id)).stocked == 3

    namespace = runtime.settings.namespace
    for name in ("catalog-0", "inventory-0"):
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=False)

    # Remembered through the store.
    again = await client.create_product(seller, draft, 7, idempotency_key="list-a")
    assert again == repriced
    with pytest.raises(IdempotencyKeyReused):
        await client.create_product(seller, draft, 9, idempotency_key="list-a")
    assert (await client.create_product(seller, draft, 3, idempotency_key="list-b")).id == half_id
    assert (await client.get_stock(product.id)).stocked == 7
    assert (await client.get_stock(half_id)).stocked == 3
    assert await _count(client, products) == 3 and await _count(client, product_keys) == 3
    items, _ = await client.search("kettle", seller_id=seller.id)
    assert sorted(p.id for p in items) == sorted([product.id, half_id])
    assert (await client.audit(max_pending_age_s=0)).ok


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_write_key_changes_a_product_once_across_a_restart(
    make_marketplace: Any, database: str
) -> None:
    """PATCH, PUT and DELETE with an Idempotency-Key: a repeat answers the product as that
    write left it, also after the catalog shard is killed and has reloaded from the store."""
    runtime = await make_marketplace(database=database, catalog_shards=2, inventory_partitions=1)
    client = runtime.client
    seller = principal((await register(client, Role.SELLER, 1))[0])
    draft = ProductDraft(name="Blue kettle", category="kitchen", price_cents=2500)
    product = await client.create_product(seller, draft, 1)
    patch = ProductPatch(price_cents=2000)

    patched = await asyncio.gather(
        *(
            client.update_product(seller, product.id, patch, idempotency_key="patch-a")
            for _ in range(4)
        )
    )
    assert {p.version for p in patched} == {2}
    replaced = await client.replace_product(
        seller, product.id, draft.model_copy(update={"name": "Red kettle"}), idempotency_key="put"
    )
    assert replaced.version == 3
    with pytest.raises(IdempotencyKeyReused):
        await client.update_product(
            seller, product.id, ProductPatch(price_cents=1), idempotency_key="patch-a"
        )
    for bad in (" ", "k" * 201):
        with pytest.raises(InvalidInput):
            await client.update_product(seller, product.id, patch, idempotency_key=bad)

    namespace = runtime.settings.namespace
    for index in range(2):
        ray.kill(ray.get_actor(f"catalog-{index}", namespace=namespace), no_restart=False)

    # Remembered through the store: the first write's answer, whatever If-Match says now.
    again = await client.update_product(
        seller, product.id, patch, if_version=(1,), idempotency_key="patch-a"
    )
    assert again == patched[0]
    with pytest.raises(IdempotencyKeyReused):
        await client.deactivate_product(seller, product.id, idempotency_key="patch-a")
    withdrawn = await client.deactivate_product(seller, product.id, idempotency_key="delete")
    assert withdrawn.version == 4 and not withdrawn.active
    assert await client.deactivate_product(seller, product.id, idempotency_key="delete") == (
        withdrawn
    )
    assert (await client.get_product(product.id)).version == 4
    assert await _count(client, product_write_keys) == 3
    async with client.engine.connect() as conn:
        product_events = (
            await conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.subject == product.id)
            )
        ).scalar_one()
    assert product_events == 4
    assert (await client.audit(max_pending_age_s=0)).ok
