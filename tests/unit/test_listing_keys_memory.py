"""A catalog shard keeps at most ``catalog_cache_size`` listing keys in memory under sync
durability and reads the others back: a repeated listing is still answered, and refused with
another body, after its key left memory and after a restart (which loads none).

In process (no Ray), on a real SQLite file, as ``test_product_write_keys``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.catalog import CatalogShard
from marketplace.domain.catalog import ProductDraft, listing_fingerprint
from marketplace.domain.errors import IdempotencyKeyReused
from marketplace.domain.ids import product_id_for
from marketplace.store import migrate
from tests.unit.factories import SELLER_A
from tests.unit.test_saga import IN_MEMORY

pytestmark = pytest.mark.unit

DRAFT = ProductDraft(name="Blue kettle", category="kitchen", price_cents=2500)
CACHE = 1


@pytest.fixture
async def on_disk(tmp_path: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    await migrate.upgrade_async(url)
    return {**IN_MEMORY, "durability": "sync", "database_url": url, "catalog_cache_size": CACHE}


async def _started(settings: dict[str, Any]) -> CatalogShard:
    shard = CatalogShard(settings)
    await shard.ready()
    return shard


async def _stopped(shard: CatalogShard) -> None:
    await shard.writer.close()
    await shard.database.dispose()


def _listing(key: str, stock: int = 1) -> tuple[str, tuple[str, str]]:
    return product_id_for(SELLER_A, key), (key, listing_fingerprint(DRAFT, stock))


async def _check_repeats(shard: CatalogShard, key: str) -> None:
    product_id, listing_key = _listing(key)
    again = await shard.create_product(product_id, SELLER_A, DRAFT, listing_key)
    assert again.id == product_id and again.version == 1
    with pytest.raises(IdempotencyKeyReused):
        await shard.create_product(product_id, SELLER_A, DRAFT, _listing(key, stock=2)[1])


async def test_listing_keys_are_a_bounded_cache_over_the_store(on_disk: dict[str, Any]) -> None:
    shard = await _started(on_disk)
    try:
        for n in range(5):
            product_id, listing_key = _listing(f"list-{n}")
            await shard.create_product(product_id, SELLER_A, DRAFT, listing_key)
            assert len(shard.listing_fingerprints) <= CACHE
        assert _listing("list-0")[0] not in shard.listing_fingerprints
        await _check_repeats(shard, "list-0")
        assert len(shard.listing_fingerprints) == CACHE
    finally:
        await _stopped(shard)

    restarted = await _started(on_disk)
    try:
        assert len(restarted.products) == 5 and not restarted.listing_fingerprints
        for n in (1, 3):
            await _check_repeats(restarted, f"list-{n}")
    finally:
        await _stopped(restarted)


async def test_without_sync_every_listing_key_is_kept(on_disk: dict[str, Any]) -> None:
    # Memory is the newest copy with async durability: it must not forget.
    shard = await _started({**on_disk, "durability": "async"})
    try:
        for n in range(CACHE + 3):
            product_id, listing_key = _listing(f"list-{n}")
            await shard.create_product(product_id, SELLER_A, DRAFT, listing_key)
        assert len(shard.listing_fingerprints) == CACHE + 3
        await _check_repeats(shard, "list-0")
    finally:
        await _stopped(shard)
