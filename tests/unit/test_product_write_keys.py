"""Idempotency-Keys on product writes (PATCH, PUT, DELETE), in process (no Ray), on a SQLite
file: a repeat answers the product as that write left it and changes nothing (no second
version, no second event), also after a restart and whatever its If-Match says by then; the key
with another write, or another product, is refused; keys are per caller; keys expire after
``idempotency_ttl_s`` and their rows are pruned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from actors.catalog import CatalogShard
from marketplace.domain.catalog import ProductDraft, ProductPatch, write_fingerprint
from marketplace.domain.errors import Forbidden, IdempotencyKeyReused, VersionMismatch
from marketplace.domain.ids import product_write_id_for
from marketplace.domain.users import Principal, Role
from marketplace.store import migrate
from marketplace.store.tables import outbox, product_write_keys
from tests.unit.factories import SELLER_A, SELLER_B, hex_id
from tests.unit.test_saga import IN_MEMORY

pytestmark = pytest.mark.unit

SELLER = Principal(id=SELLER_A, role=Role.SELLER)
OTHER_SELLER = Principal(id=SELLER_B, role=Role.SELLER)
ADMIN = Principal(id=hex_id("usr", 0xAD), role=Role.ADMIN)
DRAFT = ProductDraft(name="Blue kettle", category="kitchen", price_cents=2500)
P1, P2 = hex_id("prd", 1), hex_id("prd", 2)


def key(k: str, product_id: str, operation: str, fields: dict[str, Any]) -> tuple[str, str]:
    return k, write_fingerprint(product_id, operation, fields)


def patch_key(k: str, product_id: str, patch: ProductPatch) -> tuple[str, str]:
    return key(k, product_id, "update", patch.model_dump(exclude_none=True))


# --- the fingerprint ----------------------------------------------------------------------------


def test_the_fingerprint_tells_writes_apart() -> None:
    base = write_fingerprint(P1, "update", {"price_cents": 1})
    assert base == write_fingerprint(P1, "update", {"price_cents": 1})
    assert len(base) == 64
    assert write_fingerprint(P1, "update", {"name": "a", "price_cents": 1}) == write_fingerprint(
        P1, "update", {"price_cents": 1, "name": "a"}
    )  # field order does not matter
    others = {
        write_fingerprint(P1, "update", {"price_cents": 2}),
        write_fingerprint(P2, "update", {"price_cents": 1}),
        write_fingerprint(P1, "replace", {"price_cents": 1}),
        write_fingerprint(P1, "deactivate", {}),
        write_fingerprint(P1, "update", {}),
    }
    assert base not in others and len(others) == 5
    with pytest.raises(ValueError):
        write_fingerprint(P1, "delete", {})


def test_a_write_id_is_per_caller_and_key_not_per_product() -> None:
    one = product_write_id_for(SELLER_A, "k")
    assert one == product_write_id_for(SELLER_A, "k") and one.startswith("req_")
    assert one != product_write_id_for(SELLER_B, "k")
    assert one != product_write_id_for(SELLER_A, "k2")
    assert len(one) <= 40  # fits the id columns


# --- the shard ----------------------------------------------------------------------------------


@pytest.fixture
async def on_disk(tmp_path: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    await migrate.upgrade_async(url)
    return {**IN_MEMORY, "durability": "sync", "database_url": url}


async def _started(settings: dict[str, Any]) -> CatalogShard:
    shard = CatalogShard(settings)
    await shard.ready()
    return shard


async def _stopped(shard: CatalogShard) -> None:
    await shard._sweeps.settled()
    await shard.writer.close()
    assert shard.engine is not None
    await shard.engine.dispose()


@pytest.fixture
async def shard(on_disk: dict[str, Any]) -> AsyncIterator[CatalogShard]:
    made = await _started(on_disk)
    await made.create_product(P1, SELLER_A, DRAFT)
    await made.create_product(P2, SELLER_A, DRAFT)
    yield made
    await _stopped(made)


async def _count(shard: CatalogShard, table: Any, **where: str) -> int:
    assert shard.engine is not None
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with shard.engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def test_a_repeated_patch_bumps_the_version_once(shard: CatalogShard) -> None:
    patch = ProductPatch(price_cents=2000)
    first = await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
    assert first.version == 2 and first.price_cents == 2000
    again = await asyncio.gather(
        *(
            shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
            for _ in range(3)
        )
    )
    assert all(product == first for product in again)
    assert shard.products[P1].version == 2
    assert await _count(shard, outbox, subject=P1) == 2  # created, updated once
    assert await _count(shard, product_write_keys) == 1


async def test_a_repeat_answers_the_write_as_it_left_the_product(shard: CatalogShard) -> None:
    """Not the product as it is now: a later change does not alter a repeat's answer, and a
    repeat whose If-Match no longer matches still answers (its write was made)."""
    patch = ProductPatch(price_cents=2000)
    first = await shard.update_product(SELLER, P1, patch, (1,), patch_key("k", P1, patch))
    later = await shard.update_product(SELLER, P1, ProductPatch(name="Red kettle"))
    assert later.version == 3
    repeat = await shard.update_product(SELLER, P1, patch, (1,), patch_key("k", P1, patch))
    assert repeat == first and repeat.version == 2
    with pytest.raises(VersionMismatch):  # without the key the condition decides
        await shard.update_product(SELLER, P1, patch, (1,))
    assert shard.products[P1] == later


async def test_the_key_with_another_write_is_refused(shard: CatalogShard) -> None:
    patch = ProductPatch(price_cents=2000)
    await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
    other = ProductPatch(price_cents=1)
    refusals = [
        shard.update_product(SELLER, P1, other, None, patch_key("k", P1, other)),
        shard.update_product(SELLER, P2, patch, None, patch_key("k", P2, patch)),
        shard.replace_product(SELLER, P1, DRAFT, None, key("k", P1, "replace", DRAFT.model_dump())),
        shard.deactivate_product(SELLER, P1, None, key("k", P1, "deactivate", {})),
    ]
    for refused in refusals:
        with pytest.raises(IdempotencyKeyReused) as caught:
            await refused
        assert caught.value.code == "idempotency_key_reused"
    assert shard.products[P1].version == 2 and shard.products[P1].active
    assert shard.products[P2].version == 1
    assert await _count(shard, outbox) == 3


async def test_keys_are_per_caller(shard: CatalogShard) -> None:
    patch = ProductPatch(price_cents=2000)
    mine = await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
    theirs = await shard.update_product(ADMIN, P1, patch, None, patch_key("k", P1, patch))
    assert (mine.version, theirs.version) == (2, 3)
    # A stranger's key does not open the product to them.
    with pytest.raises(Forbidden):
        await shard.update_product(OTHER_SELLER, P1, patch, None, patch_key("k", P1, patch))


async def test_put_and_delete_are_made_once(shard: CatalogShard) -> None:
    replacement = DRAFT.model_copy(update={"name": "Green kettle"})
    put_key = key("put", P1, "replace", replacement.model_dump())
    replaced = await shard.replace_product(SELLER, P1, replacement, None, put_key)
    assert await shard.replace_product(SELLER, P1, replacement, None, put_key) == replaced
    delete_key = key("del", P1, "deactivate", {})
    withdrawn = await shard.deactivate_product(SELLER, P1, None, delete_key)
    assert (withdrawn.version, withdrawn.active) == (3, False)
    assert await shard.deactivate_product(SELLER, P1, (1,), delete_key) == withdrawn
    assert await _count(shard, outbox, subject=P1) == 3
    # Withdrawing what is withdrawn changes nothing; its key still stands for that answer.
    noop_key = key("del-again", P1, "deactivate", {})
    assert await shard.deactivate_product(SELLER, P1, None, noop_key) == withdrawn
    assert await _count(shard, outbox, subject=P1) == 3
    assert await _count(shard, product_write_keys) == 3


async def test_keys_outlive_a_restart(on_disk: dict[str, Any]) -> None:
    shard = await _started(on_disk)
    await shard.create_product(P1, SELLER_A, DRAFT)
    patch = ProductPatch(price_cents=2000)
    first = await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
    await _stopped(shard)
    restarted = await _started(on_disk)
    try:
        repeat = await restarted.update_product(SELLER, P1, patch, (1,), patch_key("k", P1, patch))
        assert repeat == first
        other = ProductPatch(price_cents=1)
        with pytest.raises(IdempotencyKeyReused):
            await restarted.update_product(SELLER, P1, other, None, patch_key("k", P1, other))
        assert restarted.products[P1].version == 2
        assert await _count(restarted, outbox, subject=P1) == 2
    finally:
        await _stopped(restarted)


async def test_a_key_on_another_shards_product_is_refused_by_the_store(
    on_disk: dict[str, Any], shard: CatalogShard
) -> None:
    """The caller's key, used on a product of shard B, then on one of shard A: A does not
    hold the key in memory, the store's row for it refuses the write, and nothing changes."""
    other_shard = await _started(on_disk)
    try:
        await other_shard.create_product(hex_id("prd", 3), SELLER_A, DRAFT)
        patch = ProductPatch(price_cents=2000)
        p3 = hex_id("prd", 3)
        await other_shard.update_product(SELLER, p3, patch, None, patch_key("k", p3, patch))
        with pytest.raises(IdempotencyKeyReused):
            await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
        assert shard.products[P1].version == 1
        assert await _count(shard, outbox, subject=P1) == 1
    finally:
        await _stopped(other_shard)


async def test_a_write_whose_answer_was_lost_is_answered_from_the_store(
    on_disk: dict[str, Any], shard: CatalogShard
) -> None:
    """An attempt committed but its shard never learnt it (memory behind the store): the
    retry meets the key's row, answers what that attempt made, and catches memory up."""
    patch = ProductPatch(price_cents=2000)
    made = await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
    shard.write_keys.clear()
    shard.products[P1] = shard.products[P1].model_copy(update={"version": 1, "price_cents": 2500})
    again = await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
    assert again == made and shard.products[P1] == made
    assert await _count(shard, outbox, subject=P1) == 2


async def test_keys_expire_and_are_pruned(on_disk: dict[str, Any]) -> None:
    settings = {**on_disk, "idempotency_ttl_s": 0.3, "retention_interval_s": 0.01}
    shard = await _started(settings)
    try:
        await shard.create_product(P1, SELLER_A, DRAFT)
        patch = ProductPatch(price_cents=2000)
        assert (
            await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
        ).version == 2
        await asyncio.sleep(0.4)
        # Past its window the key makes a new write (the old row gives way to the new one).
        assert (
            await shard.update_product(SELLER, P1, patch, None, patch_key("k", P1, patch))
        ).version == 3
        assert await _count(shard, product_write_keys) == 1
        await asyncio.sleep(0.4)
        other = ProductPatch(price_cents=1)
        await shard.update_product(SELLER, P1, other, None, patch_key("k2", P1, other))
        await shard._sweeps.settled()
        assert await _count(shard, product_write_keys) == 1  # k pruned, k2 kept
        assert set(shard.write_keys) == {product_write_id_for(SELLER_A, "k2")}
    finally:
        await _stopped(shard)
    # A restarted shard loads only the keys inside the window.
    restarted = await _started(settings)
    try:
        assert set(restarted.write_keys) == {product_write_id_for(SELLER_A, "k2")}
        await asyncio.sleep(0.4)
        await _stopped(restarted)
        restarted = await _started(settings)
        assert restarted.write_keys == {}
    finally:
        await _stopped(restarted)
