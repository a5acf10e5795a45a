"""CatalogReplica: a read replica of one catalog shard, fed by the shard's change stream.

Replica ``i`` follows shard ``i // catalog_replicas``. It long-polls the shard for the changes
after the last it received (``CatalogShard.changes_since``) and applies them in order, each
``replication_delay_ms`` after the shard made it (``marketplace.domain.replica_state``). It has no
store: it starts (and, killed, restarts) empty and catches up from a snapshot of the shard, which
is part of its loading, so it answers no read before it has one. Reads say how far the replica
has applied (the shard's sequence number), so a session read can insist on having caught up
(``actors.catalog_reads``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import ray

from actors.base import ActorBase
from actors.directory import CATALOG, Directory
from actors.protocols import CatalogReplicaApi, CatalogShardApi
from marketplace.config import Durability
from marketplace.domain.catalog import Product, SearchHit, SortKey
from marketplace.domain.change_log import Change
from marketplace.domain.replica_state import ReplicaState
from marketplace.store.writer import Writer

log = logging.getLogger(__name__)

# How long one poll waits at the shard for a change; after a failed poll (the shard
# restarting), how long before the next.
POLL_WAIT_S = 10.0
POLL_RETRY_S = 0.2


class CatalogReplica(ActorBase):
    """The products of one catalog shard, as far as this replica has applied its changes."""

    SOURCE = "marketplace/replicas"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        super().__init__(settings, index, count, writer=Writer(None, Durability.NONE))
        self.shard_index = index // max(self.settings.catalog_replicas, 1)
        self.state = ReplicaState(self.settings.replication_delay_ms / 1000)
        self.directory = Directory(self.settings)
        self.stale_served = 0
        self._name = f"replicas-{index}"
        self._applied = asyncio.Event()  # set and replaced whenever ``applied`` moves
        self._follower: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def started(self) -> None:
        """Catch up from a snapshot before answering anything, then follow the stream."""
        while True:
            try:
                await self._poll(0.0)
                break
            except Exception as exc:
                log.warning("replica %d: its shard did not answer yet: %r", self.index, exc)
                await asyncio.sleep(POLL_RETRY_S)
        self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def get_products(
        self, product_ids: list[str], min_seq: int, wait_s: float
    ) -> tuple[int, dict[str, Product]]:
        """The known products among ``product_ids`` as applied here, and how far that is."""
        await self._reach(min_seq, wait_s)
        found = {pid: self.state.products[pid] for pid in product_ids if pid in self.state.products}
        self._count_stale(found)
        return self.state.applied, found

    async def search(
        self,
        query: str,
        category: str | None,
        seller_id: str | None,
        limit: int,
        after: SortKey | None,
        min_seq: int,
        wait_s: float,
    ) -> tuple[int, list[SearchHit]]:
        """The shard's best ``limit`` hits after ``after`` as applied here."""
        await self._reach(min_seq, wait_s)
        hits = self.state.index.search(
            query, category=category, seller_id=seller_id, limit=limit, after=after
        )
        self._count_stale(hit.product.id for hit in hits)
        return self.state.applied, hits

    async def stats(self) -> dict[str, float]:
        """``applied`` and ``known`` (shard sequence numbers), ``behind`` (changes received,
        not applied yet) and ``stale_served`` (products served while a newer change of them
        waited here)."""
        await self.loaded()
        return {
            "applied": self.state.applied,
            "known": self.state.known,
            "behind": self.state.known - self.state.applied,
            "stale_served": self.stale_served,
        }

    def _count_stale(self, product_ids: Any) -> None:
        stale = sum(1 for pid in product_ids if self.state.stale(pid))
        if stale:
            self.stale_served += stale
            self.metrics.stale_reads(stale)

    async def _reach(self, min_seq: int, wait_s: float) -> None:
        """Wait (up to ``wait_s``) until this replica has applied ``min_seq``."""
        await self.loaded()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while self.state.applied < min_seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), remaining)

    async def _follow(self) -> None:
        while True:
            try:
                await self._poll(POLL_WAIT_S)
            except Exception as exc:
                log.debug("replica %d: polling its shard failed: %r", self.index, exc)
                await asyncio.sleep(POLL_RETRY_S)

    async def _poll(self, wait_s: float) -> None:
        shard = self.directory.at(CATALOG, self.shard_index)
        seq, changes, snapshot = await shard.poll(
            CatalogShardApi.changes_since, self.state.known, wait_s
        )
        if snapshot is not None:
            self.state.reset(seq, snapshot)
            self._moved()
        else:
            self._received(changes)

    def _received(self, changes: list[Change]) -> None:
        self.state.receive(changes)
        self._apply_due()

    def _apply_due(self) -> None:
        """Apply what is due now, and set a timer for the next change that is not."""
        lags = self.state.apply_due(time.time())
        if lags:
            self.metrics.replicated(self._name, lags)
            self._moved()
        due = self.state.next_due()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(due - time.time(), 0.0), self._apply_due)

    def _moved(self) -> None:
        self._applied.set()
        self._applied = asyncio.Event()


_ANSWERS: type[CatalogReplicaApi] = CatalogReplica  # mypy checks the class against its protocol
CatalogReplicaActor = ray.remote(CatalogReplica)
