"""CatalogShard: the products whose id hashes to this shard, and their search index."""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from actors.base import ActorBase
from actors.protocols import CatalogShardApi
from marketplace.domain.catalog import (
    Product,
    ProductDraft,
    ProductPatch,
    SearchHit,
    SearchIndex,
    SortKey,
    product_event,
)
from marketplace.domain.errors import (
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    VersionMismatch,
)
from marketplace.domain.events import EventType
from marketplace.domain.users import Principal, Role
from marketplace.store import catalog as store
from marketplace.store.changes import Changes


class CatalogShard(ActorBase):
    """Owns products by ``stable_hash(product_id) % shards``."""

    SOURCE = "marketplace/catalog"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.products: dict[str, Product] = {}
        # product id -> the digest of the listing request whose Idempotency-Key made it
        self.listing_fingerprints: dict[str, str] = {}
        self.index_ = SearchIndex()
        super().__init__(settings, index, count)

    async def load(self) -> None:
        loaded, fingerprints = await store.load_owned(self.database, self.index, self.count)
        for product in loaded:
            self.products[product.id] = product
            self.index_.upsert(product)
        self.listing_fingerprints.update(fingerprints)

    async def create_product(
        self,
        product_id: str,
        seller_id: str,
        draft: ProductDraft,
        listing_key: tuple[str, str] | None = None,
    ) -> Product:
        """Add a product; idempotent by ``product_id``.

        ``listing_key`` is the (Idempotency-Key, fingerprint) the id was derived from; it is
        stored with the product, so a repeat with another body is refused, also after a restart.
        """
        await self.loaded()
        async with self.locks.hold(product_id):
            existing = self.products.get(product_id)
            if existing is not None:
                if existing.seller_id != seller_id:
                    raise Conflict(f"product id {product_id} is taken")
                known = self.listing_fingerprints.get(product_id)
                if listing_key is not None and known != listing_key[1]:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used with a different listing",
                        product_id=product_id,
                    )
                return existing
            product = Product(
                id=product_id, seller_id=seller_id, version=1, active=True, **draft.model_dump()
            )
            changes = None if listing_key is None else store.listed(product, *listing_key)
            await self._save(product, EventType.PRODUCT_CREATED, changes)
            if listing_key is not None:
                self.listing_fingerprints[product_id] = listing_key[1]
            return product

    async def update_product(
        self,
        principal: Principal,
        product_id: str,
        patch: ProductPatch,
        if_version: tuple[int, ...] | None = None,
    ) -> Product:
        """Apply a partial update (owner or admin), from one of ``if_version`` if given."""
        await self.loaded()
        async with self.locks.hold(product_id):
            product = self._owned_by(principal, product_id, if_version)
            updated = product.patched(patch)
            await self._save(updated, EventType.PRODUCT_UPDATED)
        await self._outlive_leases()
        return updated

    async def replace_product(
        self,
        principal: Principal,
        product_id: str,
        draft: ProductDraft,
        if_version: tuple[int, ...] | None = None,
    ) -> Product:
        """Replace every editable field (owner or admin), from one of ``if_version`` if given."""
        await self.loaded()
        async with self.locks.hold(product_id):
            updated = self._owned_by(principal, product_id, if_version).replaced(draft)
            await self._save(updated, EventType.PRODUCT_UPDATED)
        await self._outlive_leases()
        return updated

    async def deactivate_product(
        self, principal: Principal, product_id: str, if_version: tuple[int, ...] | None = None
    ) -> Product:
        """Withdraw a product from sale (owner or admin); idempotent, but with ``if_version``
        only from one of those versions."""
        await self.loaded()
        async with self.locks.hold(product_id):
            updated = self._owned_by(principal, product_id, if_version)
            if updated.active:
                updated = updated.deactivated()
                await self._save(updated, EventType.PRODUCT_DEACTIVATED)
        # Also when it was already inactive: a concurrent deactivation may still be waiting.
        await self._outlive_leases()
        return updated

    async def get_products(self, product_ids: list[str]) -> dict[str, Product]:
        """The known products among ``product_ids`` (inactive ones included)."""
        await self.loaded()
        return {pid: self.products[pid] for pid in product_ids if pid in self.products}

    async def lease_products(self, product_ids: list[str]) -> tuple[float, dict[str, Product]]:
        """``get_products`` with the lease a caller may keep them for (actors/leases.py)."""
        return self.settings.product_lease_s, await self.get_products(product_ids)

    async def search(
        self,
        query: str,
        category: str | None,
        seller_id: str | None,
        limit: int,
        after: SortKey | None,
    ) -> list[SearchHit]:
        """This shard's best ``limit`` hits after the cursor key."""
        await self.loaded()
        return self.index_.search(
            query, category=category, seller_id=seller_id, limit=limit, after=after
        )

    async def snapshot(self) -> list[Product]:
        """Every product of this shard (audit, tests)."""
        await self.loaded()
        return list(self.products.values())

    async def _outlive_leases(self) -> None:
        """Answer a write only once every copy handed out before it has expired.

        See actors/leases.py. The wait is outside the product's lock, so writes to one product
        still follow each other at the store's pace.
        """
        if self.settings.product_lease_s:
            await asyncio.sleep(self.settings.product_lease_s)

    def _owned_by(
        self, principal: Principal, product_id: str, if_version: tuple[int, ...] | None = None
    ) -> Product:
        product = self.products.get(product_id)
        if product is None:
            raise NotFound(f"product {product_id} not found", product_id=product_id)
        if principal.role is not Role.ADMIN and product.seller_id != principal.id:
            raise Forbidden("only the product's seller may change it", product_id=product_id)
        if if_version is not None and product.version not in if_version:
            raise VersionMismatch(
                f"product {product_id} is at version {product.version}, not "
                + (" or ".join(map(str, if_version)) or "any version named"),
                product_id=product_id,
                version=product.version,
            )
        return product

    async def _save(
        self, product: Product, event_type: EventType, changes: Changes | None = None
    ) -> None:
        event = product_event(product, event_type)
        await self.writer.write(store.saved(product, self.SOURCE, [event], changes))
        self.products[product.id] = product
        self.index_.upsert(product)


_ANSWERS: type[CatalogShardApi] = CatalogShard  # mypy checks the class against its protocol
CatalogShardActor = ray.remote(CatalogShard)
