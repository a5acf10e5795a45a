"""/v1/ready and /metrics ask every actor; a flood of them must not become a flood of actor
calls: within a short window a replica reuses its last figures, concurrent requests share one
fetch, and a failed fetch is not kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serve_app.routes import operations

pytestmark = pytest.mark.unit


class CountingClient:
    """Stands in for the replica's client: counts the fetches that reach the actors."""

    def __init__(self) -> None:
        self.ready_calls = 0
        self.stats_calls = 0
        self.fail = False

    async def ready(self) -> list[dict[str, Any]]:
        self.ready_calls += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("an actor is gone")
        return [{"kind": "OrderCoordinator"}, {"kind": "InventoryPartition"}]

    async def order_stats(self) -> dict[str, int]:
        self.stats_calls += 1
        await asyncio.sleep(0.01)
        return {"confirmed": self.stats_calls}

    async def relay_stats(self) -> None:
        return None


async def test_concurrent_readiness_checks_share_one_fetch() -> None:
    client = CountingClient()
    answers = await asyncio.gather(*(operations.actors_ready(client) for _ in range(50)))  # type: ignore[arg-type]
    assert answers == [2] * 50
    assert client.ready_calls == 1
    assert await operations.actors_ready(client) == 2  # type: ignore[arg-type]
    assert client.ready_calls == 1  # inside the window: no new fetch


async def test_a_failed_readiness_fetch_is_not_kept() -> None:
    client = CountingClient()
    client.fail = True
    with pytest.raises(RuntimeError):
        await operations.actors_ready(client)  # type: ignore[arg-type]
    client.fail = False
    assert await operations.actors_ready(client) == 2  # type: ignore[arg-type]
    assert client.ready_calls == 2


async def test_scrapes_reuse_the_figures_until_the_window_ends() -> None:
    client = CountingClient()
    first = await asyncio.gather(*(operations.business_figures(client) for _ in range(20)))  # type: ignore[arg-type]
    assert {stats["confirmed"] for stats, _ in first} == {1}
    assert client.stats_calls == 1
    operations.business_figures.cache_clear()  # the window's end, without waiting 5 s
    stats, relay = await operations.business_figures(client)  # type: ignore[arg-type]
    assert stats == {"confirmed": 2} and relay is None
