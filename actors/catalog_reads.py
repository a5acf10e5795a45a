"""Product reads and searches as ``MARKETPLACE_CATALOG_CONSISTENCY`` asks, over the read replicas.

``strong`` (and any mode without replicas): the shards, through this process's leased copies
(``actors.product_reads``), as always. ``eventual``: one of the shard's replicas, in turn; a
copy it answered is kept here for ``product_lease_s`` without invalidation, so a read may be
older than the newest write by the replication lag plus that much. ``session``: like
``eventual``, but a read carrying a session token (``marketplace.domain.session_token``) is
answered only by a replica that has applied as much of the shard as the token says (a held copy
counts when it came from such a replica); one that is behind is given ``SESSION_WAIT_S`` to
catch up, then the shard answers. Every read and write of the session raises its token to what
it saw, so a client that sends it back reads its own writes and never goes back in time.

Only the gateway's product reads and searches pass a session; the marketplace's own reads (a
cart's prices, a checkout's, a stock check's owner) stay strong whatever the mode.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable

from actors import metrics
from actors.coalesce import Coalescer
from actors.directory import CATALOG, REPLICAS, Directory
from actors.protocols import CatalogReplicaApi, CatalogShardApi
from marketplace.config import Consistency
from marketplace.domain.catalog import Product, SearchHit, SortKey
from marketplace.domain.ids import owner_index
from marketplace.domain.session_token import CatalogSession

# How long a session read waits for a lagging replica before the shard answers it instead.
SESSION_WAIT_S = 0.02


class ReplicaReads:
    """Reads served by the catalog's replicas, as the consistency setting allows."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        settings = directory.settings
        self.mode = settings.catalog_consistency
        self.enabled = settings.catalog_replicas > 0 and self.mode is not Consistency.STRONG
        self._ttl_s = settings.product_lease_s
        # product id -> (until when, the replica's sequence number, the copy)
        self._held: dict[str, tuple[float, int, Product]] = {}
        self._turn = itertools.count()
        # Per shard: reads that need no particular sequence number (eventual, or a session
        # without a token for the shard), coalesced into one replica call at a time, as the
        # leased reads are: a copy running out under load would otherwise send every reader of
        # it to the replica at once.
        self._reads: dict[int, Coalescer[str, tuple[int, Product]]] = {}
        # Replica index -> the furthest sequence number it answered with: a session read goes
        # to one known to have caught up, rather than waiting on one that may not have.
        self._seen: dict[int, int] = {}

    def _session(self, session: CatalogSession | None) -> CatalogSession | None:
        """The session to honour: only in ``session`` consistency."""
        return session if self.mode is Consistency.SESSION else None

    def held(self, product_id: str) -> Product | None:
        """In ``eventual``, a replica's copy still held here (never waits); None otherwise."""
        if self.mode is not Consistency.EVENTUAL:
            return None
        held = self._held.get(product_id)
        return held[2] if held is not None and held[0] > time.monotonic() else None

    async def get(self, product_id: str, session: CatalogSession | None) -> Product | None:
        """The product from a replica (or a held copy of one) fresh enough for ``session``."""
        session = self._session(session)
        if session is None:
            # Eventual's common case first: a live held copy, before hashing to the shard.
            held = self._held_at(product_id, 0)
            if held is not None:
                return held[1]
        shard = owner_index(product_id, self.directory.count(CATALOG))
        need = session.needs(shard) if session is not None else 0
        found = self._held_at(product_id, need)
        if found is None and not need:
            found = await self._coalesced(shard).get(product_id)
        elif found is None:
            found = await self._fetch_fresh(shard, product_id, need)
        if found is None:
            return None
        applied, product = found
        if session is not None:
            session.saw(shard, applied)
        return product

    def _held_at(self, product_id: str, need: int) -> tuple[int, Product] | None:
        """A held copy from a replica that had applied ``need`` or more, if one is live."""
        held = self._held.get(product_id)
        if held is None or held[0] <= time.monotonic() or held[1] < need:
            return None
        return held[1], held[2]

    def _hold(self, applied: int, products: dict[str, Product]) -> None:
        """Keep copies answered by a replica (or the shard) at ``applied`` for the TTL."""
        if self._ttl_s <= 0:
            return
        now = time.monotonic()
        until = now + self._ttl_s
        for product_id, product in products.items():
            held = self._held.get(product_id)
            # A slower answer from a replica further behind must not replace a newer live copy.
            if held is None or held[0] <= now or held[1] <= applied:
                self._held[product_id] = (until, applied, product)
        if len(self._held) > 100_000:
            self._held.clear()  # a crude bound: copies are cheap to ask for again

    def _coalesced(self, shard: int) -> Coalescer[str, tuple[int, Product]]:
        reads = self._reads.get(shard)
        if reads is None:
            reads = self._reads[shard] = Coalescer(
                self._replica_fetch(shard), held=lambda pid: self._held_at(pid, 0)
            )
        return reads

    def _replica_fetch(
        self, shard: int
    ) -> Callable[[list[str]], Awaitable[dict[str, tuple[int, Product]]]]:
        async def fetch(ids: list[str]) -> dict[str, tuple[int, Product]]:
            index = self._pick(shard)
            replica = self.directory.batched(REPLICAS, index)
            applied, found = await replica.call(CatalogReplicaApi.get_products, ids, 0, 0.0)
            self._saw(index, applied)
            self._hold(applied, found)
            return {pid: (applied, product) for pid, product in found.items()}

        return fetch

    async def _fetch_fresh(
        self, shard: int, product_id: str, need: int
    ) -> tuple[int, Product] | None:
        """The product from a replica that has applied ``need`` (waiting a little for one),
        or else from the shard."""
        index = self._pick(shard, need)
        replica = self.directory.batched(REPLICAS, index)
        applied, found = await replica.call(
            CatalogReplicaApi.get_products, [product_id], need, SESSION_WAIT_S
        )
        self._saw(index, applied)
        if applied < need:
            self._count("owner")
            owner = self.directory.batched(CATALOG, shard)
            applied, found = await owner.call(CatalogShardApi.products_at, [product_id])
        else:
            self._count("replica")
        self._hold(applied, found)
        product = found.get(product_id)
        return None if product is None else (applied, product)

    async def search_shard(
        self,
        shard: int,
        session: CatalogSession | None,
        query: str,
        category: str | None,
        seller_id: str | None,
        limit: int,
        after: SortKey | None,
    ) -> list[SearchHit]:
        """Shard ``shard``'s hits from one of its replicas fresh enough for ``session``."""
        session = self._session(session)
        need = session.needs(shard) if session is not None else 0
        index = self._pick(shard, need)
        replica = self.directory.batched(REPLICAS, index)
        applied, hits = await replica.call(
            CatalogReplicaApi.search,
            query,
            category,
            seller_id,
            limit,
            after,
            need,
            SESSION_WAIT_S if need else 0.0,
        )
        self._saw(index, applied)
        if applied < need:
            assert session is not None
            self._count("owner")
            owner = self.directory.batched(CATALOG, shard)
            hits = await owner.call(
                CatalogShardApi.search, query, category, seller_id, limit, after
            )
            # Asked after the search: at least what it saw (a token may only over-claim).
            applied, _ = await owner.call(CatalogShardApi.products_at, [])
        elif session is not None and need:
            self._count("replica")
        if session is not None:
            session.saw(shard, applied)
        return hits

    async def written(self, product_id: str, session: CatalogSession | None) -> None:
        """After a write of ``product_id`` was answered: raise ``session`` past it."""
        session = self._session(session)
        if session is None or not self.enabled:
            return
        shard = owner_index(product_id, self.directory.count(CATALOG))
        seq, _ = await self.directory.batched(CATALOG, shard).call(CatalogShardApi.products_at, [])
        session.saw(shard, seq)

    def _pick(self, shard: int, need: int = 0) -> int:
        """The next of the shard's replicas in turn, spreading reads over them; with ``need``,
        among those known to have applied that much (else the one known to be furthest)."""
        replicas = self.directory.replicas_of(shard)
        if need:
            caught = [r for r in replicas if self._seen.get(r, 0) >= need]
            if not caught:
                return max(replicas, key=lambda r: self._seen.get(r, 0))
            replicas = caught
        return replicas[next(self._turn) % len(replicas)]

    def _saw(self, replica: int, applied: int) -> None:
        if applied > self._seen.get(replica, 0):
            self._seen[replica] = applied

    def _count(self, outcome: str) -> None:
        if self.directory.settings.metrics:
            metrics.session_read(self.directory.settings.namespace, outcome)
