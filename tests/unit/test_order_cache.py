"""An OrderCoordinator with sync durability keeps in memory only the orders with work left and
a bounded cache of the others (``order_cache_size``), in process (no Ray) on a SQLite file:
every order stays readable, cancellable, movable and replayable, the status counts stay
right, and a restarted coordinator loads only the open orders yet answers the old ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from actors.orders import OrderCoordinator
from marketplace.config import Durability
from marketplace.domain.errors import NotFound, TransientFailure
from marketplace.domain.orders import FailureReason, Order, OrderStatus
from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Principal, Role
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.snapshot import load_audit_data
from marketplace.store.tables import orders
from tests.unit.factories import BUYER, LosingWriter
from tests.unit.test_key_window import _started, _stopped
from tests.unit.test_saga import IN_MEMORY, P1, FakePeers, checkout

pytestmark = pytest.mark.unit

ME = Principal(id=BUYER, role=Role.BUYER)
CARRIER = Principal(id="carrier", role=Role.CARRIER)


@pytest.fixture
async def peers() -> FakePeers:
    made = FakePeers([P1])
    await made.resolve()
    await made.inventory.adjust_stock(P1.id, 100, f"seed:{P1.id}")
    return made


@pytest.fixture
async def on_disk(tmp_path: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    await migrate.upgrade_async(url)
    return {**IN_MEMORY, "durability": "sync", "database_url": url, "order_cache_size": 2}


@pytest.fixture
async def coordinator(on_disk: dict[str, Any], peers: FakePeers) -> AsyncIterator[OrderCoordinator]:
    made = await _started(on_disk, peers)
    yield made
    await _stopped(made)


async def _hung(coordinator: OrderCoordinator, peers: FakePeers, key: str) -> asyncio.Task[Order]:
    """A checkout left pending: its charge does not answer until ``peers.charge_gate`` is set."""
    peers.charge_gate.clear()
    peers.charging.clear()
    placing = asyncio.create_task(coordinator.place_order(checkout(key, [(P1, 1)])))
    await asyncio.wait_for(peers.charging.wait(), 10)
    return placing


def _statuses(stats: dict[str, int]) -> dict[str, int]:
    return {k.removeprefix("status_"): v for k, v in stats.items() if k.startswith("status_") and v}


async def test_memory_holds_open_orders_and_a_bounded_cache_yet_answers_every_order(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    placed = [await coordinator.place_order(checkout(f"k{n}", [(P1, 1)])) for n in range(5)]
    assert all(o.status is OrderStatus.CONFIRMED for o in placed)
    pending = await _hung(coordinator, peers, "k-pending")
    stats = await coordinator.stats()
    assert _statuses(stats) == {"confirmed": 5, "pending": 1}
    assert stats["orders_held"] == len(coordinator.orders) == 1 + 2
    first = placed[0]
    assert first.id not in coordinator.orders

    # let go of, yet answered from the store: read, replayed, the key's order
    assert await coordinator.get_order(ME, first.id) == first
    assert coordinator.counters["store_reads"] == 1
    with pytest.raises(NotFound):
        await coordinator.get_order(Principal(id="someone-else", role=Role.BUYER), first.id)
    assert await coordinator.place_order(checkout("k0", [(P1, 1)])) == first
    assert await coordinator.order_for_key(BUYER, checkout("k0", []).order_id()) == first
    assert peers.charges == 5  # no second charge; the pending one's still waits

    # cancelled, and moved, once let go of again
    for other in placed[3:]:
        await coordinator.get_order(ME, other.id)
    assert first.id not in coordinator.orders and placed[1].id not in coordinator.orders
    cancelled = await coordinator.cancel_order(ME, first.id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.failure_reason == FailureReason.CANCELLED_BY_BUYER
    shipment = await coordinator.move_shipment(CARRIER, placed[1].id, ShipmentStatus.SHIPPED)
    assert shipment.status is ShipmentStatus.SHIPPED
    assert (await coordinator.get_order(ME, placed[1].id)).status is OrderStatus.SHIPPED
    stock = (await peers.inventory.get_stock([P1.id]))[P1.id]
    assert (stock.sold, stock.reserved) == (4, 1)  # the cancelled unit went back

    peers.charge_gate.set()
    assert (await pending).status is OrderStatus.CONFIRMED
    stats = await coordinator.stats()
    assert _statuses(stats) == {"confirmed": 4, "shipped": 1, "cancelled": 1}
    assert stats["orders_held"] == 2  # nothing open: the cache alone
    assert len(coordinator.orders.with_work()) == 0

    # the audit's snapshot: every order, as the store holds it
    assert coordinator.engine is not None
    stored = await load_audit_data(coordinator.engine)
    snapshot = await coordinator.snapshot()
    assert sorted(snapshot, key=lambda o: o.id) == sorted(stored.orders, key=lambda o: o.id)
    assert len(snapshot) == 6


async def test_a_restarted_coordinator_loads_only_open_orders_yet_answers_old_ones(
    on_disk: dict[str, Any], peers: FakePeers
) -> None:
    first = await _started(on_disk, peers)
    placed = [await first.place_order(checkout(f"k{n}", [(P1, 1)])) for n in range(4)]
    placing = await _hung(first, peers, "k-pending")
    placing.cancel()  # the coordinator "crashes" waiting for the charge
    with pytest.raises(asyncio.CancelledError):
        await placing
    await _stopped(first)
    # ... and another crashed after recording a cancellation's intent
    cancelling = placed[0]
    await peers.shipments.move(cancelling.id, ShipmentStatus.CANCELLED)
    engine = create_engine(on_disk["database_url"])
    async with engine.begin() as conn:
        await conn.execute(
            update(orders)
            .where(orders.c.id == cancelling.id)
            .values(failure_reason=FailureReason.CANCELLED_BY_BUYER, version=2)
        )
    await engine.dispose()

    peers.charge_gate.set()
    second = await _started({**on_disk, "order_cache_size": 2}, peers)
    try:
        await asyncio.wait_for(asyncio.gather(*second._resumes), 10)
        assert second.counters["resumed"] == 2
        pending_id = checkout("k-pending", []).order_id()
        # five orders, a cache of two: only the two open orders were loaded
        assert {o.id for o in second.orders.values()} == {pending_id, cancelling.id}
        stats = await second.stats()
        assert _statuses(stats) == {"confirmed": 4, "cancelled": 1}
        assert (await second.get_order(ME, cancelling.id)).status is OrderStatus.CANCELLED
        assert await second.get_order(ME, placed[1].id) == placed[1]
        assert await second.place_order(checkout("k2", [(P1, 1)])) == placed[2]
        assert peers.charges == 5
        stock = (await peers.inventory.get_stock([P1.id]))[P1.id]
        assert (stock.sold, stock.reserved) == (4, 0)
    finally:
        await _stopped(second)
    # With room for every order, a restart loads them all: memory then knows every order, and
    # a new order's id is checked in memory alone.
    roomy = await _started({**on_disk, "order_cache_size": 10}, peers)
    try:
        assert len(roomy.orders) == 5
        assert roomy.counters["resumed"] == 0
    finally:
        await _stopped(roomy)


async def test_a_checkout_whose_insert_answer_was_lost_is_taken_up_not_placed_again(
    on_disk: dict[str, Any], peers: FakePeers
) -> None:
    # The retry finds the order in the store and not in memory: the key's own order (inside
    # its window), not an earlier order whose id a new one must not reuse.
    writer = LosingWriter(create_engine(on_disk["database_url"]), Durability.SYNC)
    coordinator = await _started(on_disk, peers, writer=writer)
    try:
        command = checkout("lost", [(P1, 1)])
        writer.lose = 1
        with pytest.raises(TransientFailure):
            await coordinator.place_order(command)
        order = await coordinator.place_order(command)
        assert order.id == command.order_id() and order.status is OrderStatus.CONFIRMED
        assert peers.charges == 1
        assert _statuses(await coordinator.stats()) == {"confirmed": 1}
    finally:
        await _stopped(coordinator)
