"""An inventory partition's memory stays bounded under sync durability: it holds the held
reservations (open work) and at most ``inventory_cache_size`` settled orders and restock
request ids; what it forgot is read back from the store, so a late reserve after a release
still holds nothing, a retried commit or release changes nothing, a repeated restock is
answered (and with another delta refused), and a restart loads only the held reservations.

In process (no Ray), on a real SQLite file, as ``test_inbound_effects``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.inventory import InventoryPartition
from marketplace.config import Durability, Settings
from marketplace.domain.errors import IdempotencyKeyReused, TransientFailure
from marketplace.domain.inventory import ReservationState, ReserveOutcome, StockItem
from marketplace.store import inventory as store
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from tests.unit.factories import LosingWriter, hex_id

pytestmark = pytest.mark.unit

A, B = hex_id("prd", 0xA), hex_id("prd", 0xB)
CACHE = 2


def order(n: int) -> str:
    return hex_id("ord", n)


@pytest.fixture
async def settings(tmp_path: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    await migrate.upgrade_async(url)
    return Settings(
        database_url=url, durability=Durability.SYNC, inventory_cache_size=CACHE
    ).model_dump()


async def _started(settings: dict[str, Any], writer: LosingWriter | None = None) -> Any:
    partition = InventoryPartition(settings, writer=writer)
    await partition.ready()
    return partition


async def _stopped(partition: InventoryPartition) -> None:
    await partition.writer.close()
    await partition.database.dispose()


@pytest.fixture
async def partition(settings: dict[str, Any]) -> AsyncIterator[InventoryPartition]:
    made = await _started(settings)
    await made.adjust_stock(A, 100, "seed-a")
    await made.adjust_stock(B, 100, "seed-b")
    yield made
    await _stopped(made)


async def _churn(partition: InventoryPartition, first: int, count: int = CACHE + 1) -> None:
    """Settle ``count`` fresh orders, pushing older settled ones out of memory."""
    for n in range(first, first + count):
        assert await partition.reserve(order(n), [(B, 1)]) is ReserveOutcome.RESERVED
        await partition.release(order(n), [B])


def _in_memory(partition: InventoryPartition, order_id: str) -> bool:
    return order_id in partition.reservations or order_id in partition.settled


async def _stored_state(partition: InventoryPartition, order_id: str) -> set[ReservationState]:
    rows = await store.load_order(partition.database, order_id, 0, 1)
    return {row.state for row in rows}


async def _stock(partition: InventoryPartition, product_id: str) -> StockItem:
    memory = (await partition.get_stock([product_id]))[product_id]
    assert await store.load_item(partition.database, product_id) == memory
    return memory


async def test_memory_holds_the_open_work_and_a_bounded_cache(
    partition: InventoryPartition,
) -> None:
    for n in range(30):
        outcome = await partition.reserve(order(n), [(A, 1), (B, 2)])
        assert outcome is ReserveOutcome.RESERVED
        if n % 3 == 0:
            await partition.commit(order(n))
        elif n % 3 == 1:
            await partition.release(order(n), [A, B])
        assert len(partition.settled) <= CACHE
    rejected = await partition.reserve(order(99), [(A, 1_000)])
    assert rejected is ReserveOutcome.OUT_OF_STOCK
    assert await partition.reserve(order(98), [(A, 1)]) is ReserveOutcome.RESERVED
    await partition.release(order(98), [A])

    still_held = {order(n) for n in range(30) if n % 3 == 2}
    assert set(partition.reservations) == still_held
    assert len(partition.settled) == CACHE
    snapshot = await partition.snapshot()  # what the audit reads: the held and cached ones
    assert {r.order_id for r in snapshot["reservations"]} == still_held | set(partition.settled)
    assert (await _stock(partition, A)).model_dump(include={"reserved", "sold"}) == {
        "reserved": 10,
        "sold": 10,
    }
    # The cache also bounds the restock request ids it remembers.
    for n in range(10):
        await partition.adjust_stock(A, 1, f"restock-{n}")
    assert len(partition.applied_requests) == CACHE


async def test_a_late_reserve_after_a_forgotten_release_holds_nothing(
    partition: InventoryPartition,
) -> None:
    released, never_reserved = order(1), order(2)
    assert await partition.reserve(released, [(A, 5)]) is ReserveOutcome.RESERVED
    await partition.release(released, [A])
    # A release that overtook its reserve leaves a tombstone.
    await partition.release(never_reserved, [A])
    await _churn(partition, 100)
    assert not _in_memory(partition, released) and not _in_memory(partition, never_reserved)

    before = await _stock(partition, A)
    for late in (released, never_reserved):
        assert await partition.reserve(late, [(A, 5)]) is ReserveOutcome.RELEASED
        assert await _stored_state(partition, late) == {ReservationState.RELEASED}
    assert await _stock(partition, A) == before
    assert not partition.reservations


async def test_a_retried_commit_or_release_of_a_forgotten_order_changes_nothing(
    partition: InventoryPartition,
) -> None:
    sold = order(1)
    assert await partition.reserve(sold, [(A, 4)]) is ReserveOutcome.RESERVED
    await partition.commit(sold)
    committed = await _stock(partition, A)
    assert committed.sold == 4 and committed.reserved == 0

    await _churn(partition, 100)
    assert not _in_memory(partition, sold)
    await partition.commit(sold)
    assert await partition.reserve(sold, [(A, 4)]) is ReserveOutcome.RESERVED  # as first decided
    assert await _stock(partition, A) == committed

    # Cancelling the sold order returns its units exactly once, however often it is retried.
    await _churn(partition, 200)
    await partition.release(sold, [A])
    returned = await _stock(partition, A)
    assert returned.sold == 0 and returned.available == committed.available + 4
    for first in (300, 400):
        await _churn(partition, first)
        assert not _in_memory(partition, sold)
        await partition.release(sold, [A])
        await partition.commit(sold)
        assert await _stock(partition, A) == returned
    assert await _stored_state(partition, sold) == {ReservationState.RETURNED}


async def test_a_repeated_reserve_of_a_forgotten_order_answers_what_the_first_decided(
    partition: InventoryPartition,
) -> None:
    refused = order(1)
    assert await partition.reserve(refused, [(A, 500)]) is ReserveOutcome.OUT_OF_STOCK
    await partition.adjust_stock(A, 1_000, "plenty")
    await _churn(partition, 100)
    assert not _in_memory(partition, refused)
    before = await _stock(partition, A)
    assert await partition.reserve(refused, [(A, 500)]) is ReserveOutcome.OUT_OF_STOCK
    assert await _stock(partition, A) == before


async def test_a_repeated_restock_after_it_was_forgotten_is_answered_once(
    partition: InventoryPartition,
) -> None:
    restocked = await partition.adjust_stock(A, 5, "restock")
    for n in range(CACHE + 1):
        await partition.adjust_stock(B, 1, f"other-{n}")
    assert "restock" not in partition.applied_requests

    assert await partition.adjust_stock(A, 5, "restock") == restocked
    assert (await _stock(partition, A)).stocked == restocked.stocked
    for n in range(CACHE + 1):
        await partition.adjust_stock(B, 1, f"more-{n}")
    with pytest.raises(IdempotencyKeyReused):
        await partition.adjust_stock(A, 6, "restock")
    assert (await _stock(partition, A)).stocked == restocked.stocked


async def test_a_restart_loads_only_the_held_reservations(
    settings: dict[str, Any], partition: InventoryPartition
) -> None:
    held, released, sold = order(1), order(2), order(3)
    for placed in (held, released, sold):
        assert await partition.reserve(placed, [(A, 2)]) is ReserveOutcome.RESERVED
    await partition.release(released, [A])
    await partition.commit(sold)
    before = await _stock(partition, A)
    await _stopped(partition)

    restarted = await _started(settings)
    try:
        assert set(restarted.reservations) == {held}
        assert not restarted.settled
        assert (await restarted.get_stock([A]))[A] == before
        # What it did not load it reads back when asked.
        assert await restarted.reserve(released, [(A, 2)]) is ReserveOutcome.RELEASED
        await restarted.commit(sold)
        await restarted.commit(held)
        after = await _stock(restarted, A)
        assert after.reserved == 0 and after.sold == before.sold + 2
        assert not restarted.reservations
    finally:
        await _stopped(restarted)


async def test_a_reserve_whose_answer_was_lost_holds_once(settings: dict[str, Any]) -> None:
    engine = create_engine(Settings.model_validate(settings).resolved_database_url())
    writer = LosingWriter(engine, Durability.SYNC)
    partition = await _started(settings, writer)
    try:
        await partition.adjust_stock(A, 10, "seed")
        writer.lose = 1
        with pytest.raises(TransientFailure):
            await partition.reserve(order(1), [(A, 3)])
        # The retry finds the committed rows instead of holding the units a second time.
        assert await partition.reserve(order(1), [(A, 3)]) is ReserveOutcome.RESERVED
        assert (await _stock(partition, A)).reserved == 3
        await partition.commit(order(1))
        assert (await _stock(partition, A)).model_dump(include={"reserved", "sold"}) == {
            "reserved": 0,
            "sold": 3,
        }
    finally:
        await _stopped(partition)


@pytest.mark.parametrize("durability", [Durability.ASYNC, Durability.NONE])
async def test_without_sync_memory_keeps_everything(
    settings: dict[str, Any], durability: Durability
) -> None:
    # Memory is the newest (async) or only (none) copy there: it must not forget.
    partition = await _started({**settings, "durability": durability})
    try:
        await partition.adjust_stock(A, 100, "seed")
        for n in range(CACHE + 3):
            assert await partition.reserve(order(n), [(A, 1)]) is ReserveOutcome.RESERVED
            await partition.release(order(n), [A])
            await partition.adjust_stock(A, 1, f"restock-{n}")
        assert len(partition.settled) == CACHE + 3
        assert len(partition.applied_requests) == CACHE + 4
        assert await partition.reserve(order(0), [(A, 1)]) is ReserveOutcome.RELEASED
    finally:
        await partition.writer.close()
        if partition.engine is not None:
            await partition.engine.dispose()
