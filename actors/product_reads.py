"""Product reads under the catalog's read lease, coalesced per owning shard.

Used by every process that reads products by id: the gateway's client for ``GET
/v1/products/{id}``, and the order coordinators for the prices and versions a checkout records.
A copy held under its lease is as good as a fresh read from the shard (actors/leases.py): a read
that starts after a product write was answered sees that write. So a checkout priced from a held
copy is priced as it would have been by a call to the shard.

Each instance is a lessee of the shards it reads from (actors/lessees.py): one long poll per
shard brings the products written since, which it drops, so that a write is answered as soon as
its copies are gone instead of when their leases end.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable

from actors.coalesce import Coalescer
from actors.directory import CATALOG, Directory
from actors.leases import LeaseCache
from actors.protocols import CatalogShardApi
from marketplace.domain.catalog import Product
from marketplace.domain.ids import owner_index

log = logging.getLogger(__name__)

# How long one poll for invalidations waits at the shard before it answers "none"; and after a
# poll failed (the shard restarting), how long before the next. Meanwhile writes wait out leases.
WATCH_WAIT_S = 10.0
WATCH_RETRY_S = 0.5
# A shard that cannot be polled for this long is left alone (its marketplace stopped, most
# likely); the next read from it starts polling again.
WATCH_GIVE_UP_S = 30.0


class LeasedProducts:
    """Products by id, from this process's leased copies or, in one call per shard, the shards."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._held: dict[int, LeaseCache[str, Product]] = {}
        self._reads: dict[int, Coalescer[str, Product]] = {}
        self.lessee = uuid.uuid4().hex
        self._watchers: dict[int, asyncio.Task[None]] = {}

    async def get(self, product_id: str) -> Product | None:
        """The product (inactive ones too), or None when no shard knows it."""
        held, reads = self._shard_of(product_id)
        product = held.get(product_id)
        if product is None:
            product = await reads.get(product_id)
        return product

    def held(self, product_id: str) -> Product | None:
        """The copy held under a lease, if any; never waits."""
        return self._shard_of(product_id)[0].get(product_id)

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        """The known products among ``product_ids``; reads of one shard leave in one call."""
        found: dict[str, Product] = {}
        missing: list[str] = []
        for product_id in product_ids:
            product = self._shard_of(product_id)[0].get(product_id)
            if product is None:
                missing.append(product_id)
            else:
                found[product_id] = product
        if missing:
            fetched = await asyncio.gather(*(self.get(pid) for pid in missing))
            found.update((p.id, p) for p in fetched if p is not None)
        return found

    def _shard_of(
        self, product_id: str
    ) -> tuple[LeaseCache[str, Product], Coalescer[str, Product]]:
        index = owner_index(product_id, self.directory.count(CATALOG))
        held = self._held.get(index)
        if held is None:
            held = self._held[index] = LeaseCache()
            self._reads[index] = Coalescer(self._leased_fetch(index, held), held=held.get)
        if index not in self._watchers:
            self._watch(index, held)
        return held, self._reads[index]

    def _watch(self, index: int, held: LeaseCache[str, Product]) -> None:
        """Poll shard ``index`` for invalidations from now on (needs a running loop: without
        one, none is polled yet, and the shard's writes wait out this process's leases)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # A context of its own: started from a traced request, the polls would be its spans.
        self._watchers[index] = loop.create_task(
            self._keep_watching(index, held), context=contextvars.Context()
        )

    async def _keep_watching(self, index: int, held: LeaseCache[str, Product]) -> None:
        shard = self.directory.at(CATALOG, index)
        epoch, acked = "", 0
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    epoch, acked, written = await shard.poll(
                        CatalogShardApi.next_invalidations, self.lessee, epoch, acked, WATCH_WAIT_S
                    )
                except Exception as exc:
                    log.debug("polling catalog shard %d for invalidations failed: %r", index, exc)
                    failing_since = failing_since or loop.time()
                    if loop.time() - failing_since > WATCH_GIVE_UP_S:
                        return
                    await asyncio.sleep(WATCH_RETRY_S)
                    continue
                failing_since = None
                # Dropped before the next poll acknowledges them: the shard's write then answers.
                held.invalidate(written)
        finally:
            if self._watchers.get(index) is asyncio.current_task():
                del self._watchers[index]

    async def close(self) -> None:
        """Stop polling the shards (the shards' writes then wait out this process's leases)."""
        loop = asyncio.get_running_loop()
        watchers = list(self._watchers.values())
        self._watchers.clear()
        for watcher in watchers:
            # A poll started on another event loop (a test's, say) ends when that loop runs
            # again, or never if it is closed; this one can neither wait for it nor need to.
            if not watcher.get_loop().is_closed():
                watcher.cancel()
        await asyncio.gather(*(w for w in watchers if w.get_loop() is loop), return_exceptions=True)

    def _leased_fetch(
        self, index: int, held: LeaseCache[str, Product]
    ) -> Callable[[list[str]], Awaitable[dict[str, Product]]]:
        """Batched product reads from shard ``index`` that fill its lease cache ``held``."""

        async def fetch(ids: list[str]) -> dict[str, Product]:
            asked_at = held.now()
            # Copies asked for together run out together: ask again for the others still in
            # use in this call, rather than in one call each as their reads arrive.
            wanted = set(ids)
            asked = ids + [pid for pid in held.lapsed_reads() if pid not in wanted]
            shard = self.directory.batched(CATALOG, index)
            lease_s, found = await shard.call(CatalogShardApi.lease_products, asked, self.lessee)
            if lease_s > 0:
                for product_id, product in found.items():
                    held.put(product_id, product, asked_at, lease_s)
            return dict(found)

        return fetch
