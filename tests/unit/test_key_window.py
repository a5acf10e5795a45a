"""An OrderCoordinator's Idempotency-Key window, in process (no Ray), on a SQLite file: a
replay inside the window meets its order; the same key after the window places a new order;
a restarted coordinator loads only the keys inside it; expired keys are pruned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from actors.orders import OrderCoordinator
from marketplace.domain.errors import IdempotencyKeyReused, NotFound
from marketplace.domain.ids import owner_index
from marketplace.domain.orders import OrderStatus
from marketplace.domain.users import Principal, Role
from marketplace.store import migrate
from marketplace.store.tables import idempotency_keys
from tests.unit.factories import BUYER
from tests.unit.test_saga import IN_MEMORY, P1, FakePeers, checkout

pytestmark = pytest.mark.unit

TTL_S = 0.5
RESTART_TTL_S = 1.5


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
    # keys last half a second; pruning is considered at every checkout
    return {
        **IN_MEMORY,
        "durability": "sync",
        "database_url": url,
        "idempotency_ttl_s": TTL_S,
        "retention_interval_s": 0.01,
    }


async def _started(
    settings: dict[str, Any], peers: FakePeers, index: int = 0, count: int = 1, **kw: Any
) -> OrderCoordinator:
    coordinator = OrderCoordinator(settings, index, count, peers=peers, **kw)
    await coordinator.ready()
    return coordinator


async def _stopped(coordinator: OrderCoordinator) -> None:
    await coordinator._sweeps.settled()
    await coordinator.writer.close()
    assert coordinator.engine is not None
    await coordinator.engine.dispose()


@pytest.fixture
async def coordinator(on_disk: dict[str, Any], peers: FakePeers) -> AsyncIterator[OrderCoordinator]:
    made = await _started(on_disk, peers)
    yield made
    await _stopped(made)


async def _keys_stored(coordinator: OrderCoordinator) -> int:
    assert coordinator.engine is not None
    async with coordinator.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(idempotency_keys)) or 0)


async def test_a_key_reused_after_its_window_places_a_new_order(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    command = checkout("k1", [(P1, 1)])
    first = await coordinator.place_order(command)
    assert first.status is OrderStatus.CONFIRMED and first.id == command.order_id()
    # inside the window: the same order, and another body is refused
    assert await coordinator.place_order(command) == first
    with pytest.raises(IdempotencyKeyReused):
        await coordinator.place_order(checkout("k1", [(P1, 2)]))
    assert peers.charges == 1

    await asyncio.sleep(TTL_S + 0.1)
    second = await coordinator.place_order(command)
    assert second.id != first.id and second.status is OrderStatus.CONFIRMED
    assert peers.charges == 2
    assert (await peers.inventory.get_stock([P1.id]))[P1.id].sold == 2
    # the new order is the key's now, inside its own window; another body still refused
    assert await coordinator.place_order(command) == second
    with pytest.raises(IdempotencyKeyReused):
        await coordinator.place_order(checkout("k1", [(P1, 3)]))
    assert peers.charges == 2
    assert await _keys_stored(coordinator) == 1  # the expired row went with the reuse
    # what the gateway asks when a checkout outlasts its wait: the key's order now
    assert await coordinator.order_for_key(BUYER, command.order_id()) == second
    with pytest.raises(NotFound):
        await coordinator.order_for_key(BUYER, checkout("unused", [(P1, 1)]).order_id())

    # and a third time, after the second's window
    await asyncio.sleep(TTL_S + 0.1)
    third = await coordinator.place_order(command)
    assert len({first.id, second.id, third.id}) == 3
    assert await coordinator.get_order(Principal(id=BUYER, role=Role.BUYER), third.id) == third
    orders = await coordinator.orders_of(BUYER)
    assert [o.id for o in orders] == [third.id, second.id, first.id]


async def test_a_restarted_coordinator_loads_only_keys_inside_the_window(
    on_disk: dict[str, Any], peers: FakePeers
) -> None:
    # A longer window than the module's: "recent" must still be inside it once the second
    # coordinator has started, which took over half a second on a loaded machine.
    settings = {**on_disk, "idempotency_ttl_s": RESTART_TTL_S}
    first = await _started(settings, peers)
    old = await first.place_order(checkout("old", [(P1, 1)]))
    await asyncio.sleep(RESTART_TTL_S + 0.1)
    recent = await first.place_order(checkout("recent", [(P1, 1)]))
    await _stopped(first)

    # A cache smaller than the orders: only open work is loaded (none here).
    second = await _started({**settings, "order_cache_size": 1}, peers)
    try:
        # settled orders stay in the store: memory holds the keys inside the window only
        assert len(second.orders) == 0
        assert [use.order_id for use in second.keys.values()] == [recent.id]
        assert await second.place_order(checkout("recent", [(P1, 1)])) == recent
        # the old order's id is taken in the store, though not in memory
        renewed = await second.place_order(checkout("old", [(P1, 1)]))
        assert renewed.id not in (old.id, recent.id)
        assert peers.charges == 3
    finally:
        await _stopped(second)


async def test_expired_keys_are_pruned_from_memory_and_store(
    coordinator: OrderCoordinator,
) -> None:
    for n in range(3):
        await coordinator.place_order(checkout(f"p{n}", [(P1, 1)]))
    assert len(coordinator.keys) == 3 and await _keys_stored(coordinator) == 3
    await asyncio.sleep(TTL_S + 0.1)
    await coordinator.place_order(checkout("fresh", [(P1, 1)]))  # a checkout sweeps
    await coordinator._sweeps.settled()
    assert len(coordinator.keys) == 1
    assert await _keys_stored(coordinator) == 1
    assert coordinator.counters["keys_pruned"] == 3


async def test_a_renewed_order_is_owned_by_the_keys_coordinator(
    on_disk: dict[str, Any], peers: FakePeers
) -> None:
    # Two coordinators: the key's home is the one its replays are routed to; the renewed
    # order must live there too (its id routes get_order and cancel to the same place).
    command = checkout("k-home", [(P1, 1)])
    index = owner_index(command.order_id(), 2)
    home = await _started(on_disk, peers, index, 2)
    try:
        first = await home.place_order(command)
        await asyncio.sleep(TTL_S + 0.1)
        second = await home.place_order(command)
        assert second.id != first.id and owner_index(second.id, 2) == index
    finally:
        await _stopped(home)


async def test_after_the_count_of_coordinators_changes_a_replay_gets_the_stored_order(
    on_disk: dict[str, Any], peers: FakePeers
) -> None:
    # A key renewed under one coordinator; then there are two, and the renewed order is owned
    # by the one that is not the key's home. The home still knows the key (keys load by home)
    # and answers the stored order instead of placing another.
    alone = await _started(on_disk, peers)
    for n in range(100):
        command = checkout(f"moved-{n}", [(P1, 1)])
        first = await alone.place_order(command)
        await asyncio.sleep(TTL_S + 0.05)
        renewed = await alone.place_order(command)
        if owner_index(renewed.id, 2) != owner_index(command.order_id(), 2):
            break
    else:
        pytest.fail("no renewed order landed away from its key's home")
    await _stopped(alone)
    charges = peers.charges

    longer = {**on_disk, "idempotency_ttl_s": 3600}  # the renewal is inside this window
    home = await _started(longer, peers, owner_index(command.order_id(), 2), 2)
    try:
        assert await home.place_order(command) == renewed
        assert peers.charges == charges and renewed.id not in home.orders
        assert first.id != renewed.id
    finally:
        await _stopped(home)


async def test_keys_expire_without_a_store(peers: FakePeers) -> None:
    settings = {**IN_MEMORY, "idempotency_ttl_s": TTL_S}
    coordinator = await _started(settings, peers)
    command = checkout("mem", [(P1, 1)])
    first = await coordinator.place_order(command)
    assert await coordinator.place_order(command) == first
    await asyncio.sleep(TTL_S + 0.1)
    second = await coordinator.place_order(command)
    assert second.id != first.id and peers.charges == 2
    assert [o.id for o in await coordinator.orders_of(BUYER)] == [second.id, first.id]
