"""The seller view's memory stays bounded under sync durability: it keeps the facts of at most
``seller_cache_size`` orders beside its per-seller sums, and reads the others back before
counting, so a repeated or stale snapshot of an order it let go of changes nothing, a newer one
replaces what was counted, a write whose answer was lost is not counted twice, and a restart
sums the dashboards in the store (with or without loading the facts) to what they were.

In process (no Ray), on a real SQLite file, as ``test_inventory_memory``.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.sellers import SellerView
from marketplace.config import Durability, Settings
from marketplace.domain.errors import TransientFailure
from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.sellers import Dashboard
from marketplace.store.engine import create_engine
from tests.unit.factories import SELLER_A, SELLER_B, LosingWriter, make_item, make_order

pytestmark = pytest.mark.unit

CACHE = 2


def _settings(sqlite_url: str, cache: int = CACHE) -> dict[str, Any]:
    return Settings(
        database_url=sqlite_url, durability=Durability.SYNC, seller_cache_size=cache
    ).model_dump()


async def _started(sqlite_url: str, cache: int = CACHE, *, losing: bool = False) -> SellerView:
    writer = LosingWriter(create_engine(sqlite_url), Durability.SYNC) if losing else None
    view = SellerView(_settings(sqlite_url, cache), writer=writer)
    await view.ready()
    return view


async def _stopped(view: SellerView) -> None:
    view._ticker.cancel()
    await view.writer.close()
    await view.database.dispose()


def _order(n: int, status: OrderStatus = OrderStatus.CONFIRMED, version: int = 2) -> Order:
    items = (make_item(n, SELLER_A, 2, 300), make_item(n + 1000, SELLER_B, 1, 50))
    return make_order(items, status=status, n=n, version=version)


def _figures(board: Dashboard) -> tuple[int, int, int, int]:
    return (board.orders_count, board.items_sold, board.revenue_cents, board.open_orders)


async def test_a_forgotten_order_is_counted_once_and_replaced_by_a_newer_version(
    sqlite_url: str,
) -> None:
    view = await _started(sqlite_url)
    orders = [_order(n) for n in range(1, 7)]
    for order in orders:
        assert await view.apply(order) == 2
    assert len(view.facts) == CACHE  # six orders counted, two held
    assert orders[0].id not in view.facts
    before = _figures(await view.dashboard(SELLER_A))
    assert before == (6, 12, 3600, 6)

    assert await view.apply(orders[0]) == 0  # repeated, after memory let it go
    assert await view.apply(orders[1].model_copy(update={"version": 1})) == 0  # stale
    assert _figures(await view.dashboard(SELLER_A)) == before
    assert len(view.facts) == CACHE

    cancelled = orders[2].model_copy(update={"status": OrderStatus.CANCELLED, "version": 3})
    assert await view.apply(cancelled) == 2  # the counted confirmation goes, not added to
    assert _figures(await view.dashboard(SELLER_A)) == (5, 10, 3000, 5)
    assert _figures(await view.dashboard(SELLER_B)) == (5, 5, 250, 5)
    await _stopped(view)


@pytest.mark.parametrize("cache", [CACHE, 100], ids=["facts-left-in-store", "facts-loaded"])
async def test_a_restart_sums_the_dashboards_the_store_counts(sqlite_url: str, cache: int) -> None:
    view = await _started(sqlite_url, cache)
    for n in range(1, 6):
        await view.apply(_order(n))
    await view.apply(_order(1, OrderStatus.DELIVERED, 4))
    await view.apply(_order(2, OrderStatus.CANCELLED, 3))
    boards = {seller: await view.dashboard(seller) for seller in (SELLER_A, SELLER_B)}
    await _stopped(view)

    again = await _started(sqlite_url, cache)
    assert len(again.facts) == (0 if cache == CACHE else 5)
    for seller, board in boards.items():
        loaded = await again.dashboard(seller)
        assert _figures(loaded) == _figures(board)
        assert loaded.as_of == board.as_of
    assert _figures(boards[SELLER_A]) == (4, 8, 2400, 3)
    # what it did not load is read back: a repeat still changes nothing
    assert await again.apply(_order(3)) == 0
    assert _figures(await again.dashboard(SELLER_A)) == _figures(boards[SELLER_A])
    await _stopped(again)


async def test_a_write_whose_answer_was_lost_is_not_counted_twice(sqlite_url: str) -> None:
    view = await _started(sqlite_url, losing=True)
    first = _order(1)
    await view.apply(first)
    shipped = first.model_copy(update={"status": OrderStatus.SHIPPED, "version": 3})
    assert isinstance(view.writer, LosingWriter)
    view.writer.lose = 1
    with pytest.raises(TransientFailure):
        await view.apply(shipped)  # committed, but the view cannot know
    for n in range(2, 2 + 2 * CACHE):  # memory's cache moves on
        await view.apply(_order(n))
    assert first.id not in view.facts
    # The dashboards still count the confirmation: the shipment replaces it, once.
    assert _figures(await view.dashboard(SELLER_A)) == (1 + 2 * CACHE, 2 + 4 * CACHE, 3000, 5)
    assert await view.apply(shipped) == 2
    assert _figures(await view.dashboard(SELLER_A)) == (5, 10, 3000, 4)
    assert await view.apply(shipped) == 0
    assert not view._unsure
    await _stopped(view)


def test_dashboard_lag_is_measured_from_each_newly_counted_confirmation() -> None:
    from datetime import timedelta

    from actors.sellers import confirmation_lags
    from tests.unit.factories import T0, make_order

    confirmed = make_order(status=OrderStatus.CONFIRMED, n=1, updated_at=T0)
    pending = make_order(status=OrderStatus.PENDING, n=2, updated_at=T0)
    counted_before = make_order(status=OrderStatus.CONFIRMED, n=3, updated_at=T0)
    now = T0 + timedelta(seconds=1.5)
    lags = confirmation_lags([confirmed, pending, counted_before], {confirmed.id, pending.id}, now)
    assert lags == [1.5]  # the pending order is no confirmation; the third was no change
    # Two processes' clocks: a view whose clock is behind reports no negative lag.
    assert confirmation_lags([confirmed], {confirmed.id}, T0 - timedelta(seconds=1)) == [0.0]
