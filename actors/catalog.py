"""CatalogShard: the products whose id hashes to this shard, and their search index."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import ray

from actors.base import ActorBase
from actors.key_sweeps import KeySweeps, in_window
from actors.lessees import Lessees
from actors.lru import LruCache
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
from marketplace.domain.change_log import Change, ChangeLog
from marketplace.domain.errors import (
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    VersionMismatch,
)
from marketplace.domain.events import EventType
from marketplace.domain.ids import product_write_id_for
from marketplace.domain.users import Principal, Role
from marketplace.store import catalog as store
from marketplace.store.changes import Changes
from marketplace.store.rows import utcnow
from marketplace.store.writer import Writer


class CatalogShard(ActorBase):
    """Owns products by ``stable_hash(product_id) % shards``.

    A product listed with an Idempotency-Key keeps its key (``product_keys``) as long as the
    product exists, unlike the keys of writes, which expire. With sync durability the store
    has each one before memory does, so ``listing_fingerprints`` keeps only the
    ``catalog_cache_size`` most recently used and reads others back when a listing is
    repeated; with async or none durability memory is the newest (or the only) copy and keeps
    them all.
    """

    SOURCE = "marketplace/catalog"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        self.products: dict[str, Product] = {}
        # product write id (``product_write_id_for(caller, key)``) -> what its key stands for
        self.write_keys: dict[str, store.WriteKeyUse] = {}
        self._sweeps = KeySweeps("product write keys")
        self.index_ = SearchIndex()
        # What the read replicas apply (actors/catalog_replica.py); woken on every change.
        self.changes = ChangeLog()
        self._changed = asyncio.Event()
        super().__init__(settings, index, count, writer=writer)
        limit = self.settings.catalog_cache_size if self.store_first else None
        # product id -> the digest of the listing request whose Idempotency-Key made it
        self.listing_fingerprints: LruCache[str, str] = LruCache(limit)
        # Who holds leased copies of which product (actors/lessees.py).
        self.lessees = Lessees(self.settings.product_lease_s)

    async def load(self) -> None:
        loaded, fingerprints = await store.load_owned(
            self.database, self.index, self.count, with_listing_keys=not self.store_first
        )
        for product in loaded:
            self.products[product.id] = product
            self.index_.upsert(product)
        self.changes.load(loaded)
        self.listing_fingerprints.update(fingerprints)
        self.write_keys.update(
            await store.load_write_keys(
                self.database, self.index, self.count, utcnow() - self._key_ttl
            )
        )

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
                known = None if listing_key is None else await self._listing_of(product_id)
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
        write_key: tuple[str, str] | None = None,
    ) -> Product:
        """Apply a partial update (owner or admin), from one of ``if_version`` if given; once
        per ``write_key`` (see ``_write``)."""
        return await self._write(
            principal, product_id, if_version, write_key, EventType.PRODUCT_UPDATED, patch_of(patch)
        )

    async def replace_product(
        self,
        principal: Principal,
        product_id: str,
        draft: ProductDraft,
        if_version: tuple[int, ...] | None = None,
        write_key: tuple[str, str] | None = None,
    ) -> Product:
        """Replace every editable field (owner or admin), from one of ``if_version`` if given;
        once per ``write_key`` (see ``_write``)."""
        return await self._write(
            principal,
            product_id,
            if_version,
            write_key,
            EventType.PRODUCT_UPDATED,
            replace_of(draft),
        )

    async def deactivate_product(
        self,
        principal: Principal,
        product_id: str,
        if_version: tuple[int, ...] | None = None,
        write_key: tuple[str, str] | None = None,
    ) -> Product:
        """Withdraw a product from sale (owner or admin); idempotent, but with ``if_version``
        only from one of those versions; once per ``write_key`` (see ``_write``)."""
        return await self._write(
            principal, product_id, if_version, write_key, EventType.PRODUCT_DEACTIVATED, deactivate
        )

    async def get_products(self, product_ids: list[str]) -> dict[str, Product]:
        """The known products among ``product_ids`` (inactive ones included)."""
        await self.loaded()
        return {pid: self.products[pid] for pid in product_ids if pid in self.products}

    async def lease_products(
        self, product_ids: list[str], lessee: str | None = None
    ) -> tuple[float, dict[str, Product]]:
        """``get_products`` with the lease a caller may keep them for (actors/leases.py).
        A ``lessee`` that polls ``next_invalidations`` lets writes tell it to drop its copies
        instead of waiting them out; without one, writes wait out the lease."""
        found = await self.get_products(product_ids)
        if self.settings.product_lease_s:
            self.lessees.granted(lessee, found)
        return self.settings.product_lease_s, found

    async def lease_outcomes(self) -> dict[str, int]:
        """How this shard's writes met the leases out (``Lessees.outcomes``): none held, every
        holder dropped its copy, or the lease ran out first."""
        return dict(self.lessees.outcomes)

    async def next_invalidations(
        self, lessee: str, epoch: str, acked: int, wait_s: float
    ) -> tuple[str, int, list[str]]:
        """The products ``lessee`` must drop (``Lessees.next_invalidations``): a long poll."""
        return await self.lessees.next_invalidations(lessee, epoch, acked, wait_s)

    async def changes_since(
        self, seq: int, wait_s: float
    ) -> tuple[int, list[Change], list[Product] | None]:
        """What a replica that has applied up to ``seq`` lacks: ``(seq_now, changes, None)``,
        the changes after ``seq`` in order, waiting up to ``wait_s`` for one (a long poll); or
        ``(seq_now, [], products)``, every product, when the log no longer reaches back to
        ``seq`` (a new or restarted replica, one far behind)."""
        await self.loaded()
        if seq == self.changes.seq:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait_s)
        since = self.changes.since(seq)
        if since is None:
            return self.changes.seq, [], list(self.products.values())
        return self.changes.seq, since, None

    async def products_at(self, product_ids: list[str]) -> tuple[int, dict[str, Product]]:
        """``get_products`` with this shard's change sequence number as of the answer (what a
        session token records: actors/catalog_replica.py)."""
        found = await self.get_products(product_ids)
        return self.changes.seq, found

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

    async def _outlive_leases(self, product_id: str) -> None:
        """Answer a write only once no copy handed out before it can be read: every holder has
        dropped it, or its lease has run out (actors/leases.py, actors/lessees.py).

        The wait is outside the product's lock, so writes to one product still follow each
        other at the store's pace.
        """
        if self.settings.product_lease_s:
            await self.lessees.invalidate(product_id)

    async def _write(
        self,
        principal: Principal,
        product_id: str,
        if_version: tuple[int, ...] | None,
        write_key: tuple[str, str] | None,
        event_type: EventType,
        change: Callable[[Product], Product | None],
    ) -> Product:
        """Change a product (``change`` answers its new state, None for no change) and save it
        with its event; with ``if_version``, only from one of those versions.

        ``write_key`` is the caller's (Idempotency-Key, fingerprint of the write): the key is
        stored with the change, so the same key again answers the product as that write left
        it, changing nothing, also after a restart and whatever ``if_version`` says now (the
        write was made); with another fingerprint (another body, operation or product) it is
        ``IdempotencyKeyReused``. Keys last ``idempotency_ttl_s``.
        """
        await self.loaded()
        async with self.locks.hold(product_id):
            if write_key is not None:
                result = await self._keyed_write(
                    principal, product_id, if_version, write_key, event_type, change
                )
            else:
                result = self._owned_by(principal, product_id, if_version)
                updated = change(result)
                if updated is not None:
                    await self._save(updated, event_type)
                    result = updated
        # Also when nothing changed: a concurrent change may still be waiting.
        await self._outlive_leases(product_id)
        return result

    async def _keyed_write(
        self,
        principal: Principal,
        product_id: str,
        if_version: tuple[int, ...] | None,
        write_key: tuple[str, str],
        event_type: EventType,
        change: Callable[[Product], Product | None],
    ) -> Product:
        self._sweep_now_and_then()
        key, fingerprint = write_key
        write_id = product_write_id_for(principal.id, key)
        use = self._write_key_use(write_id)
        if use is not None:
            return self._replayed(principal, product_id, fingerprint, use)
        product = self._owned_by(principal, product_id, if_version)
        updated = change(product)
        result = product if updated is None else updated
        use = store.WriteKeyUse(product_id, fingerprint, result, utcnow())
        changes = None
        if updated is not None:
            changes = store.saved(updated, self.SOURCE, [product_event(updated, event_type)])
        work = store.keyed_write(
            write_id, principal.id, key, use, changes, utcnow() - self._key_ttl
        )
        try:
            await self.writer.write(work)
        except store.WriteKeyTaken as taken:
            # Made before by an attempt whose answer was lost (memory missed it: the store
            # has it), or the key went with another product, maybe on another shard.
            current = taken.current
            if current is not None and current.version > self.products[product_id].version:
                self._keep(current)
            if taken.use.product_id == product_id:
                self.write_keys[write_id] = taken.use
            return self._replayed(principal, product_id, fingerprint, taken.use)
        if updated is not None:
            self._keep(updated)
        self.write_keys[write_id] = use
        return result

    def _replayed(
        self, principal: Principal, product_id: str, fingerprint: str, use: store.WriteKeyUse
    ) -> Product:
        """The answer to a write whose key was used before: the product as that write left
        it, when it is the same write; ``IdempotencyKeyReused`` otherwise."""
        if use.product_id != product_id or use.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different product write",
                product_id=product_id,
            )
        self._owned_by(principal, product_id)  # who may write still may (roles change)
        return use.product

    async def _listing_of(self, product_id: str) -> str | None:
        """The fingerprint of the listing that made ``product_id`` (None: listed without a
        key), read back from the store when memory forgot it (under the product's lock)."""
        known = self.listing_fingerprints.get(product_id)
        if known is None and self.store_first:
            known = await store.listing_fingerprint(self.database, product_id)
            if known is not None:
                self.listing_fingerprints[product_id] = known
        return known

    @property
    def _key_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.idempotency_ttl_s)

    def _write_key_use(self, write_id: str) -> store.WriteKeyUse | None:
        """What the key stands for while inside its window; None (and forgotten) after it."""
        use: store.WriteKeyUse | None = in_window(
            self.write_keys, write_id, utcnow() - self._key_ttl
        )
        return use

    def _sweep_now_and_then(self) -> None:
        """Forget the write keys past their window; shard 0 prunes their rows for all."""
        first = self.index == 0 and self.engine is not None
        self._sweeps.now_and_then(
            self.write_keys,
            utcnow() - self._key_ttl,
            self.settings.retention_interval_s,
            self._prune_write_keys if first else None,
        )

    async def _prune_write_keys(self, cutoff: datetime) -> None:
        await store.prune_write_keys(self.database, cutoff)

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
        self._keep(product)

    def _keep(self, product: Product) -> None:
        """Hold ``product`` as a change left it, and pass the change on to the replicas."""
        self.products[product.id] = product
        self.index_.upsert(product)
        if self.changes.record(product, time.time()) is not None:
            self._changed.set()
            self._changed = asyncio.Event()


def patch_of(patch: ProductPatch) -> Callable[[Product], Product | None]:
    """A write that applies ``patch``."""
    return lambda product: product.patched(patch)


def replace_of(draft: ProductDraft) -> Callable[[Product], Product | None]:
    """A write that replaces every editable field with ``draft``'s."""
    return lambda product: product.replaced(draft)


def deactivate(product: Product) -> Product | None:
    """A write that withdraws the product from sale (no change when it already is)."""
    return product.deactivated() if product.active else None


_ANSWERS: type[CatalogShardApi] = CatalogShard  # mypy checks the class against its protocol
CatalogShardActor = ray.remote(CatalogShard)
