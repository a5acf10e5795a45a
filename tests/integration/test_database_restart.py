"""The invariants when PostgreSQL restarts under a checkout load (DEVELOPERS.md: faults include
a database restart). Every connection the actors hold dies with the server, and for a few
seconds no new one can be made.

It restarts the local PostgreSQL cluster with ``pg_ctlcluster``, so it needs the server on this
machine (as CI has it), and fails rather than skips without one.
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

from marketplace.domain.errors import TransientFailure
from marketplace.domain.orders import Order, OrderStatus
from tests.integration.market import build_market

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

UNITS = [10, 10, 10, 10]
CHECKOUTS = 160
SETTLE_S = 120.0


def restart_postgres() -> float:
    """Restart the local PostgreSQL cluster (fast shutdown: every session is cut); its seconds."""
    assert shutil.which("pg_ctlcluster"), "pg_ctlcluster is needed to restart PostgreSQL"
    versions = sorted(
        Path("/etc/postgresql").iterdir(), key=lambda p: [int(x) for x in p.name.split(".")]
    )
    began = time.monotonic()
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
    return time.monotonic() - began


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
