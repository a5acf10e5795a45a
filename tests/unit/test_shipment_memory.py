"""A shipment coordinator's memory stays bounded under sync durability: it keeps at most
``shipment_cache_size`` shipments and reads any other back from the store, so opening one again
answers the first, a move starts from the stored status (a repeat changes nothing, a move the
state machine forbids is refused), and a restart loads every shipment only when they fit.

In process (no Ray), on a real SQLite file, as ``test_inventory_memory``.
"""

from __future__ import annotations

import pytest

from actors.shipments import ShipmentCoordinator
from marketplace.config import Durability, Settings
from marketplace.domain.errors import Conflict
from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.shipments import ShipmentStatus
from tests.unit.factories import make_order

pytestmark = pytest.mark.unit

CACHE = 2


async def _started(sqlite_url: str, cache: int = CACHE) -> ShipmentCoordinator:
    settings = Settings(database_url=sqlite_url, durability=Durability.SYNC)
    coordinator = ShipmentCoordinator({**settings.model_dump(), "shipment_cache_size": cache})
    await coordinator.ready()
    return coordinator


async def _stopped(coordinator: ShipmentCoordinator) -> None:
    await coordinator.writer.close()
    await coordinator.database.dispose()


def _orders() -> list[Order]:
    return [make_order(status=OrderStatus.CONFIRMED, n=n) for n in range(1, 6)]


async def test_a_forgotten_shipment_opens_once_and_moves_by_its_stored_status(
    sqlite_url: str,
) -> None:
    coordinator = await _started(sqlite_url)
    orders = _orders()
    opened = [await coordinator.open_shipment(order) for order in orders]
    assert len(coordinator.shipments) == CACHE
    first = orders[0].id
    assert first not in coordinator.shipments

    assert await coordinator.open_shipment(orders[0]) == opened[0]
    shipped = await coordinator.move(first, ShipmentStatus.SHIPPED)
    assert shipped.version == opened[0].version + 1
    for order in orders[1:]:  # push it out again
        await coordinator.get(order.id)
    assert first not in coordinator.shipments
    assert await coordinator.move(first, ShipmentStatus.SHIPPED) == shipped  # a repeat
    assert await coordinator.open_shipment(orders[0]) == shipped
    for order in orders[1:]:
        await coordinator.get(order.id)
    with pytest.raises(Conflict):
        await coordinator.move(first, ShipmentStatus.CANCELLED)  # shipped cannot be cancelled
    assert len(coordinator.shipments) == CACHE
    assert len(await coordinator.snapshot()) == len(orders)
    await _stopped(coordinator)


@pytest.mark.parametrize(("cache", "loaded"), [(CACHE, 0), (10, 5)])
async def test_a_restart_loads_every_shipment_only_when_they_fit(
    sqlite_url: str, cache: int, loaded: int
) -> None:
    first = await _started(sqlite_url)
    orders = _orders()
    for order in orders:
        await first.open_shipment(order)
    await first.move(orders[0].id, ShipmentStatus.SHIPPED)
    await _stopped(first)

    again = await _started(sqlite_url, cache)
    assert len(again.shipments) == loaded
    moved = await again.get(orders[0].id)
    assert moved is not None and moved.status is ShipmentStatus.SHIPPED
    delivered = await again.move(orders[0].id, ShipmentStatus.DELIVERED)
    assert delivered.version == moved.version + 1
    await _stopped(again)
