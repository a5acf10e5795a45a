"""Product reads under the catalog's read lease, coalesced per owning shard.

Used by every process that reads products by id: the gateway's client for ``GET
/v1/products/{id}``, and the order coordinators for the prices and versions a checkout records.
A copy held under its lease is as good as a fresh read from the shard (actors/leases.py): a read
that starts after a product write was answered sees that write. So a checkout priced from a held
copy is priced as it would have been by a call to the shard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from actors.coalesce import Coalescer
from actors.directory import CATALOG, Directory
from actors.leases import LeaseCache
from actors.protocols import CatalogShardApi
from marketplace.domain.catalog import Product
from marketplace.domain.ids import owner_index


class LeasedProducts:
    """Products by id, from this process's leased copies or, in one call per shard, the shards."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._held: dict[int, LeaseCache[str, Product]] = {}
        self._reads: dict[int, Coalescer[str, Product]] = {}

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
        return held, self._reads[index]

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
            lease_s, found = await shard.call(CatalogShardApi.lease_products, asked)
            if lease_s > 0:
                for product_id, product in found.items():
                    held.put(product_id, product, asked_at, lease_s)
            return dict(found)

        return fetch
