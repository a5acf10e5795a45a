"""The audit over a real store and real actors finds what was changed behind the actors' backs.

Every other test closes on a clean audit; this one shows that the audit of a running marketplace
is not clean when the store breaks an invariant, and names the checks that say so.
"""

from __future__ import annotations

from typing import Any

import pytest
import ray
from sqlalchemy import delete, insert, update

from marketplace.domain.ids import new_id, stable_hash
from marketplace.domain.orders import OrderStatus
from marketplace.store.tables import outbox, stock_items
from tests.integration.market import build_market

pytestmark = pytest.mark.integration


def failing(report: Any) -> set[str]:
    return {name for name, check in report.checks.items() if not check.ok}


async def test_the_audit_finds_a_store_changed_behind_the_actors(make_marketplace: Any) -> None:
    runtime = await make_marketplace(inventory_partitions=1)
    client = runtime.client
    market = await build_market(client, stock=[5], buyers=1)
    product = market.products[0]
    order = await client.place_order(
        market.buyers[0].id, "k", items=[{"product_id": product.id, "quantity": 2}]
    )
    assert order.status is OrderStatus.CONFIRMED
    assert (await client.audit(max_pending_age_s=0)).ok

    # A row that no actor loaded: the audit names it until its owner loads it (a restart).
    unloaded = new_id("prd")
    async with client.engine.begin() as conn:
        await conn.execute(
            insert(stock_items).values(
                product_id=unloaded,
                route_key=stable_hash(unloaded),
                stocked=0,
                reserved=0,
                sold=0,
                version=1,
            )
        )
    report = await client.audit(max_pending_age_s=0)
    assert failing(report) == {"live_matches_store"}
    assert report.checks["live_matches_store"].violations == [
        f"stock {unloaded}: in the store but in no actor's memory"
    ]
    namespace = runtime.settings.namespace
    ray.kill(ray.get_actor("inventory-0", namespace=namespace), no_restart=False)
    assert (await client.audit(max_pending_age_s=0)).ok

    # One unit more sold than the reservations say, and the order's confirmation lost.
    async with client.engine.begin() as conn:
        await conn.execute(
            update(stock_items)
            .where(stock_items.c.product_id == product.id)
            .values(sold=stock_items.c.sold + 1)
        )
        await conn.execute(
            delete(outbox).where(outbox.c.subject == order.id, outbox.c.type == "order.confirmed")
        )
    report = await client.audit(max_pending_age_s=0)
    assert failing(report) == {"I1_no_oversell", "I4_events_recorded", "live_matches_store"}
    assert report.checks["I1_no_oversell"].violations == [
        f"stock {product.id}: sold=3 but committed reservations=2"
    ]
    assert report.checks["I4_events_recorded"].violations == [
        f"order {order.id}: no order.confirmed event in the outbox"
    ]
