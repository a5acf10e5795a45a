"""The store's retention queries on SQLite: a buyer's orders paged by keyset, Idempotency-Keys
loaded by their window and pruned in batches, old published events and inbox ids pruned
(tests/integration runs the same on PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from marketplace.domain.ids import order_id_for, owner_index
from marketplace.domain.orders import Order
from marketplace.events import inbox as inbox_store
from marketplace.events import outbox as outbox_store
from marketplace.store import migrate
from marketplace.store import orders as store
from marketplace.store.changes import Changes
from marketplace.store.engine import create_engine
from marketplace.store.tables import idempotency_keys, inbox, orders, outbox
from tests.unit.factories import BUYER, T0, hex_id, make_item, make_order

pytestmark = pytest.mark.unit

OTHER = hex_id("usr", 2)


async def test_a_buyers_orders_page_in_the_store(tmp_path: Path) -> None:
    await check_buyer_pages(f"sqlite:///{tmp_path / 'pages.db'}")


async def test_keys_load_by_window_and_prune_in_batches(tmp_path: Path) -> None:
    await check_key_window(f"sqlite:///{tmp_path / 'keys.db'}")


async def test_old_published_events_and_inbox_ids_are_pruned(tmp_path: Path) -> None:
    await check_event_pruning(f"sqlite:///{tmp_path / 'events.db'}")


def _order(n: int, buyer: str, minutes: int) -> Order:
    at = T0 + timedelta(minutes=minutes)
    return make_order(n=n, buyer_id=buyer, created_at=at, updated_at=at)


async def check_buyer_pages(url: str) -> None:
    """Pages are newest first, ties broken by id, each after the cursor; another buyer's
    orders and another coordinator's never show (``url``: an empty database)."""
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    try:
        # 1..7: the buyer's, with two pairs placed at the same instant; 8, 9: someone else's.
        minutes = {1: 0, 2: 1, 3: 1, 4: 2, 5: 3, 6: 3, 7: 4}
        mine = [_order(n, BUYER, m) for n, m in minutes.items()]
        theirs = [_order(n, OTHER, 5) for n in (8, 9)]
        async with engine.begin() as conn:
            await Changes().insert(orders, [store.order_row(o) for o in mine + theirs]).apply(conn)
        newest_first = sorted(mine, key=lambda o: (o.created_at, o.id), reverse=True)

        seen: list[Order] = []
        before = None
        while True:
            page = await store.buyer_page(engine, BUYER, 0, 1, 3, before)
            seen += page
            if len(page) < 3:
                break
            before = (page[-1].created_at, page[-1].id)
        assert [o.id for o in seen] == [o.id for o in newest_first]
        assert seen == newest_first  # whole orders, read back as written
        assert await store.buyer_page(engine, BUYER, 0, 1) == newest_first  # no limit: all
        # a cursor on a tie: the other order of the same instant with a smaller id comes next
        tie = next(o for o in newest_first if o.id == hex_id("ord", 6))
        after_tie = await store.buyer_page(engine, BUYER, 0, 1, 2, (tie.created_at, tie.id))
        assert [o.id for o in after_tie] == [hex_id("ord", 5), hex_id("ord", 4)]
        # two coordinators: each pages only the orders it owns, and together they are all
        halves = [await store.buyer_page(engine, BUYER, i, 2, 100) for i in (0, 1)]
        for index, half in enumerate(halves):
            assert all(owner_index(o.id, 2) == index for o in half)
        assert sorted(o.id for half in halves for o in half) == sorted(o.id for o in mine)
        assert await store.buyer_page(engine, hex_id("usr", 3), 0, 1, 10) == []
    finally:
        await engine.dispose()


async def check_key_window(url: str) -> None:
    """Only keys used inside the window load; an expired key's row is replaced by its reuse
    (not refused by the unique index); pruning deletes the expired rows, batch by batch."""
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    try:
        # key-i placed order i at T0 + i minutes
        placed = [
            make_order(
                n=n, id=order_id_for(BUYER, f"key-{n}"), created_at=T0 + timedelta(minutes=n)
            )
            for n in range(1, 8)
        ]
        async with engine.begin() as conn:
            for n, order in enumerate(placed, 1):
                await store.placed(order, f"key-{n}", f"fp-{n}", "test", []).apply(conn)

        window_start = T0 + timedelta(minutes=5)
        loaded, keys = await store.load_owned(engine, 0, 1, window_start)
        assert len(loaded) == 7
        assert keys == {
            order_id_for(BUYER, f"key-{n}"): store.KeyUse(
                placed[n - 1].id, f"fp-{n}", T0 + timedelta(minutes=n)
            )
            for n in (5, 6, 7)
        }
        # two coordinators: each loads the keys whose home it is
        homes = [(await store.load_owned(engine, i, 2, window_start))[1] for i in (0, 1)]
        for index, part in enumerate(homes):
            assert all(owner_index(home, 2) == index for home in part)
        assert homes[0].keys() | homes[1].keys() == keys.keys()

        # key-1 reused after its window: the old row goes in the same transaction
        renewed = make_order(n=100, created_at=T0 + timedelta(minutes=9))
        work = store.expired_key_dropped(
            BUYER,
            "key-1",
            window_start,
            store.placed(renewed, "key-1", "fp-new", "test", []),
        )
        async with engine.begin() as conn:
            await work(conn)
        # ... but a key inside its window keeps its row: the unique index refuses the reuse
        inside = make_order(n=101, created_at=T0 + timedelta(minutes=9))
        work = store.expired_key_dropped(
            BUYER, "key-6", window_start, store.placed(inside, "key-6", "fp-x", "test", [])
        )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await work(conn)
        renewed_order, fingerprint = await store.load_stored(engine, renewed.id)
        assert renewed_order == renewed and fingerprint == "fp-new"

        # keys 2, 3, 4 are expired (key-1's row is the new one): pruned two per batch
        assert await store.prune_keys(engine, window_start, batch=2) == 3
        assert await store.prune_keys(engine, window_start, batch=2) == 0
        async with engine.connect() as conn:
            left = await conn.execute(
                select(idempotency_keys.c.key).order_by(idempotency_keys.c.key)
            )
            assert [row.key for row in left] == ["key-1", "key-5", "key-6", "key-7"]
            count = await conn.scalar(select(func.count()).select_from(orders))
            assert count == 8  # orders themselves are kept: only their keys expire
    finally:
        await engine.dispose()


async def check_event_pruning(url: str) -> None:
    """Outbox rows published before the cutoff go, in batches; unpublished rows stay however
    old they are; inbox ids applied before the cutoff go, newer ones stay."""
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    cutoff = T0 + timedelta(hours=1)
    old, new = T0, T0 + timedelta(hours=2)
    # (sequence, published_at): 1..5 published long ago, 6 published lately, 7 and 8 never
    published = {1: old, 2: old, 3: old, 4: old, 5: old, 6: new, 7: None, 8: None}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                outbox.insert(),
                [
                    {
                        "id": f"evt_{n}",
                        "type": "stock.changed",
                        "source": "test",
                        "subject": "prd_1",
                        "sequence": n,
                        "time": old,
                        "data": {},
                        "published_at": at,
                    }
                    for n, at in published.items()
                ],
            )
            await conn.execute(
                inbox.insert(),
                [
                    {"message_id": f"m{n}", "routing_key": "stock.replenished", "processed_at": at}
                    for n, at in enumerate([old, old, old, new])
                ],
            )
        assert await outbox_store.prune_published(engine, cutoff, batch=2) == 5
        assert await outbox_store.prune_published(engine, new + timedelta(days=1)) == 1
        assert await inbox_store.prune(engine, cutoff, batch=2) == 3
        async with engine.connect() as conn:
            left = [row.id for row in await conn.execute(select(outbox.c.id).order_by(outbox.c.id))]
            assert left == ["evt_7", "evt_8"]  # unpublished: kept whatever their age
            ids = [row.message_id for row in await conn.execute(select(inbox.c.message_id))]
            assert ids == ["m3"]
        assert await inbox_store.seen(engine, "m3") and not await inbox_store.seen(engine, "m0")
    finally:
        await engine.dispose()


async def test_order_lines_keep_the_shown_price_and_old_rows_read_back_without(
    tmp_path: Path,
) -> None:
    """Order lines are JSON in the ``orders`` row: ``shown_unit_price_cents`` needs no
    migration, and a row written before it existed reads back with None."""
    url = f"sqlite:///{tmp_path / 'shown.db'}"
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    try:
        item = make_item(1, unit_price_cents=300)
        shown = make_order((item.model_copy(update={"shown_unit_price_cents": 250}),), n=1)
        old = store.order_row(make_order((item,), n=2))
        old["items"] = [
            {k: v for k, v in line.items() if k != "shown_unit_price_cents"}
            for line in old["items"]
        ]
        async with engine.begin() as conn:
            rows = [store.order_row(shown), old]
            await Changes().insert(orders, rows).apply(conn)
        loaded, _ = await store.load_owned(engine, 0, 1, T0)
        by_id = {order.id: order for order in loaded}
        assert by_id[shown.id] == shown
        assert by_id[shown.id].items[0].shown_unit_price_cents == 250
        assert by_id[hex_id("ord", 2)].items[0].shown_unit_price_cents is None
        assert by_id[hex_id("ord", 2)].items[0].unit_price_cents == 300
    finally:
        await engine.dispose()
