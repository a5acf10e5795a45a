"""Checkouts when the database goes away.

PostgreSQL restarted under a checkout load (DEVELOPERS.md counts a database restart among the
faults): every connection the actors hold dies with the server, and for a few seconds no new
one can be made. The test restarts the local cluster with ``pg_ctlcluster``, so it needs the
server on this machine (as CI has it), and fails rather than skips without one.

And the answer an insert loses with its connection, after it committed.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from marketplace.domain.errors import IdempotencyKeyReused, TransientFailure
from marketplace.domain.orders import Order, OrderStatus
from marketplace.store.tables import orders
from tests.integration.market import build_market, principal

pytestmark = pytest.mark.integration

UNITS = [10, 10, 10, 10]
CHECKOUTS = 160
SETTLE_S = 120.0


def restart_postgres() -> None:
    """Restart the local PostgreSQL cluster (fast shutdown: every session is cut)."""
    assert shutil.which("pg_ctlcluster"), "pg_ctlcluster is needed to restart PostgreSQL"
    versions = sorted(
        Path("/etc/postgresql").iterdir(), key=lambda p: [int(x) for x in p.name.split(".")]
    )
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            versions[-1].name,
            "main",
            "restart",
            "--",
            "-m",
            "fast",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.postgres
async def test_orders_end_and_invariants_hold_across_a_postgres_restart(
    make_marketplace: Any,
) -> None:
    runtime = await make_marketplace("postgres", inventory_partitions=2, order_coordinators=2)
    client = runtime.client
    market = await build_market(client, stock=UNITS, buyers=16)
    rng = random.Random(11)
    requests = [
        (
            market.buyers[i % len(market.buyers)].id,
            f"pg-restart-{i}",
            [
                {"product_id": p.id, "quantity": 1}
                for p in rng.sample(market.products, rng.randint(1, 2))
            ],
        )
        for i in range(CHECKOUTS)
    ]

    async def checkout(buyer_id: str, key: str, items: list[dict[str, Any]]) -> Order:
        return await client.place_order(buyer_id, key, items=items)

    async def paced() -> list[Order | BaseException]:
        tasks = []
        for request in requests:
            tasks.append(asyncio.ensure_future(checkout(*request)))
            await asyncio.sleep(0.01)
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    load = asyncio.ensure_future(paced())
    await asyncio.sleep(0.4)
    await asyncio.to_thread(restart_postgres)
    first = await asyncio.wait_for(load, SETTLE_S)

    # What failed, failed as "the database is unavailable" (a 503 over HTTP), nothing else.
    failures = [r for r in first if isinstance(r, BaseException)]
    assert failures, "the restart met no checkout: nothing here was tested"
    assert all(isinstance(r, TransientFailure) for r in failures), [
        repr(r)[:300] for r in failures if not isinstance(r, TransientFailure)
    ]
    # Every order a coordinator recorded ended without any client retrying: a saga whose step
    # could not be written waited for the database instead of stopping half way.
    await client.flush()
    stats = await client.order_stats()
    assert stats.get("status_pending", 0) == 0, stats

    # A client retries what failed, with the same key: each ends in one terminal order.
    deadline = time.monotonic() + SETTLE_S
    results: list[Order | BaseException] = first
    while any(isinstance(r, BaseException) for r in results) and time.monotonic() < deadline:
        results = [
            r if isinstance(r, Order) else await _attempt(checkout, request)
            for r, request in zip(results, requests, strict=True)
        ]
    placed = [r for r in results if isinstance(r, Order)]
    assert len(placed) == CHECKOUTS, [repr(r)[:300] for r in results if r not in placed][:3]
    assert len({order.id for order in placed}) == CHECKOUTS
    assert {order.status for order in placed} <= {OrderStatus.CONFIRMED, OrderStatus.CANCELLED}

    await client.flush()
    stats = await client.order_stats()
    assert stats.get("status_pending", 0) == 0, stats
    assert stats["status_confirmed"] == sum(o.status is OrderStatus.CONFIRMED for o in placed)
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()


async def _attempt(checkout: Any, request: Any) -> Order | BaseException:
    try:
        order: Order = await checkout(*request)
        return order
    except TransientFailure as exc:  # the database is still coming back
        await asyncio.sleep(0.2)
        return exc


async def test_a_retry_takes_up_an_order_whose_insert_committed_unanswered(
    make_marketplace: Any,
) -> None:
    """An insert can commit and still fail for its caller, when the connection dies before the
    answer. The store then has an order its coordinator does not hold. A second marketplace on
    the same database stands in for that lost answer: it records the order, and a retry of the
    same key through the first one must answer that order, not refuse the key."""
    from actors.runtime import Runtime

    runtime = await make_marketplace(inventory_partitions=1, order_coordinators=1)
    client = runtime.client
    market = await build_market(client, stock=[5], buyers=1)
    buyer, product = market.buyers[0], market.products[0]
    items = [{"product_id": product.id, "quantity": 2}]
    other = Runtime(
        runtime.settings.model_copy(update={"namespace": runtime.settings.namespace + "b"})
    )
    try:
        placed = await (await other.start()).place_order(buyer.id, "lost-answer", items=items)
        assert placed.status is OrderStatus.CONFIRMED
    finally:
        await other.stop()

    retried = await client.place_order(buyer.id, "lost-answer", items=items)
    assert (retried.id, retried.status, retried.total_cents) == (
        placed.id,
        OrderStatus.CONFIRMED,
        placed.total_cents,
    )
    assert (await client.get_order(principal(buyer), placed.id)).id == placed.id
    with pytest.raises(IdempotencyKeyReused):
        await client.place_order(
            buyer.id, "lost-answer", items=[{"product_id": product.id, "quantity": 1}]
        )
    async with client.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(orders).where(orders.c.buyer_id == buyer.id)
        )
    assert count == 1
