"""/v1/ready asks every actor and /metrics every node's export; a flood of them must not
become a flood of calls: within a short window a replica reuses its last figures, concurrent
requests share one fetch, and a failed fetch is not kept."""

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
        self.fail = False

    async def ready(self) -> list[dict[str, Any]]:
        self.ready_calls += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("an actor is gone")
        return [{"kind": "OrderCoordinator"}, {"kind": "InventoryPartition"}]


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


async def test_scrapes_reuse_the_figures_until_the_window_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scrapes: list[str] = []

    async def cluster_metrics(namespace: str) -> bytes:
        scrapes.append(namespace)
        await asyncio.sleep(0.01)
        return f"scrape {len(scrapes)}".encode()

    monkeypatch.setattr(operations.scrape, "cluster_metrics", cluster_metrics)
    operations.marketplace_metrics.cache_clear()
    first = await asyncio.gather(*(operations.marketplace_metrics("ns") for _ in range(20)))
    assert set(first) == {b"scrape 1"} and scrapes == ["ns"]
    operations.marketplace_metrics.cache_clear()  # the window's end, without waiting for it
    assert await operations.marketplace_metrics("ns") == b"scrape 2"
