"""The writer's merged batches against real SQLite (both paths) and PostgreSQL.

Merging a batch of declared changes into one statement per table must leave the database
exactly as applying the changes one by one would; a change that fails must fail alone.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.config import Durability
from marketplace.domain.events import DomainEvent, EventType
from marketplace.store.changes import Changes, upsert_statement
from marketplace.store.engine import create_engine, sqlite_writer_engine
from marketplace.store.tables import carts, metadata, outbox, stock_items
from marketplace.store.writer import FileLock, Writer
from tests.conftest import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration

WriterFactory = Callable[..., Writer]


@pytest_asyncio.fixture(
    params=[
        "sqlite-thread",
        "sqlite-aiosqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def make_writer(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Writers on one fresh database, by the path they commit through."""
    pg_url = None
    if request.param == "postgres":
        pg_url = await create_pg_database()
        url = pg_url
    else:
        url = f"sqlite:///{tmp_path / 'changes.db'}"
    engines: list[AsyncEngine] = []
    writers: list[Writer] = []

    async def make(*, merge: bool = True) -> Writer:
        engine = create_engine(url)
        engines.append(engine)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        lock = direct = None
        if request.param.startswith("sqlite"):
            lock = FileLock(str(tmp_path / "changes.db.writelock"))
        if request.param == "sqlite-thread":
            direct = sqlite_writer_engine(engine)
            assert direct is not None
        writer = Writer(engine, Durability.SYNC, lock, direct=direct, merge=merge)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        await writer.close()
    for engine in engines:
        await engine.dispose()
    if pg_url is not None:
        await drop_pg_database(pg_url)


def _stock_row(product: str, stocked: int, version: int) -> dict[str, Any]:
    return {
        "product_id": product,
        "route_key": 7,
        "stocked": stocked,
        "reserved": version % 3,
        "sold": 0,
        "version": version,
    }


def _event(subject: str, sequence: int) -> DomainEvent:
    return DomainEvent(
        type=EventType.STOCK_CHANGED, subject=subject, sequence=sequence, data={"n": sequence}
    )


def _random_changes(rng: random.Random, count: int) -> list[Changes]:
    """Writes that collide on keys, mix tables and change a table's statement shape."""
    changes = []
    for number in range(count):
        change = Changes()
        for _ in range(rng.randint(1, 3)):
            product = f"prd_{rng.randint(0, 4)}"
            roll = rng.random()
            if roll < 0.4:
                row = _stock_row(product, rng.randint(0, 99), number)
                change.upsert(stock_items, [row], ["product_id"])
            elif roll < 0.55:
                # The same table with its columns in another order: another statement shape,
                # which must not overtake the rows queued before it.
                row = dict(reversed(_stock_row(product, 1000 + number, number).items()))
                change.upsert(stock_items, [row], ["product_id"])
            elif roll < 0.85:
                cart = {
                    "buyer_id": f"usr_{rng.randint(0, 3)}",
                    "route_key": 1,
                    "items": [{"product_id": product, "quantity": number}],
                    "version": number,
                }
                change.upsert(carts, [cart], ["buyer_id"])
            else:
                fresh = {
                    "buyer_id": f"usr_new_{number}_{rng.randint(0, 10**9)}",
                    "route_key": 1,
                    "items": [],
                    "version": 1,
                }
                change.insert(carts, [fresh])
        change.events("tests", [_event(f"stk_{number}", 1)])
        changes.append(change)
    return changes


async def _contents(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        stock = (await conn.execute(select(stock_items).order_by("product_id"))).all()
        cart_rows = (await conn.execute(select(carts).order_by("buyer_id"))).all()
        events = (
            await conn.execute(select(outbox.c.subject, outbox.c.data).order_by(outbox.c.position))
        ).all()
    return {"stock": stock, "carts": cart_rows, "events": events}


async def _truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in (stock_items, carts, outbox):
            await conn.execute(table.delete())


async def test_a_merged_batch_leaves_what_one_by_one_leaves(make_writer: Any) -> None:
    for seed in range(5):
        changes = _random_changes(random.Random(seed), 40)
        merged: Writer = await make_writer()
        assert merged.engine is not None
        await _truncate(merged.engine)
        await asyncio.gather(*(merged.write(change) for change in changes))
        assert merged.commits < len(changes)  # they did share transactions
        got = await _contents(merged.engine)

        await _truncate(merged.engine)
        one_by_one: Writer = await make_writer(merge=False)
        for change in changes:
            await one_by_one.write(change)
        assert one_by_one.commits == len(changes)
        assert one_by_one.engine is not None
        expected = await _contents(one_by_one.engine)
        assert got == expected, f"seed {seed}"
        assert len(got["events"]) == len(changes)


async def test_the_last_write_of_a_key_in_a_batch_wins(make_writer: Any) -> None:
    writer: Writer = await make_writer()
    writes = [
        Changes().upsert(stock_items, [_stock_row("prd_same", stocked, stocked)], ["product_id"])
        for stocked in range(20)
    ]
    await asyncio.gather(*(writer.write(change) for change in writes))
    assert writer.engine is not None
    async with writer.engine.connect() as conn:
        row = (await conn.execute(select(stock_items))).one()
    assert (row.stocked, row.version) == (19, 19)


async def test_a_failing_change_fails_alone(make_writer: Any) -> None:
    writer: Writer = await make_writer()
    await writer.write(Changes().events("tests", [_event("stk_taken", 1)]))
    changes = [
        Changes().upsert(stock_items, [_stock_row(f"prd_{n}", n, 1)], ["product_id"])
        for n in range(10)
    ]
    duplicate = Changes().events("tests", [_event("stk_taken", 1)])  # same subject, sequence
    changes.insert(5, duplicate)
    results = await asyncio.gather(
        *(writer.write(change) for change in changes), return_exceptions=True
    )
    assert [isinstance(r, IntegrityError) for r in results] == [n == 5 for n in range(11)]
    assert writer.engine is not None
    async with writer.engine.connect() as conn:
        stored = (await conn.execute(select(stock_items.c.product_id))).scalars().all()
        events = (await conn.execute(select(outbox.c.subject))).scalars().all()
    assert sorted(stored) == sorted(f"prd_{n}" for n in range(10))
    assert events == ["stk_taken"]


async def test_a_database_error_fails_its_batch_and_the_writer_goes_on(make_writer: Any) -> None:
    writer: Writer = await make_writer()
    row = {"buyer_id": "usr_e", "route_key": 1, "items": [], "version": 1}
    assert writer.engine is not None
    async with writer.engine.begin() as conn:
        await conn.run_sync(carts.drop)
    with pytest.raises(DBAPIError):  # no such table: not a refused row
        await writer.write(Changes().upsert(carts, [row], ["buyer_id"]))
    async with writer.engine.begin() as conn:
        await conn.run_sync(carts.create)
    await writer.write(Changes().upsert(carts, [row], ["buyer_id"]))
    async with writer.engine.connect() as conn:
        assert (await conn.execute(select(carts.c.buyer_id))).scalars().all() == ["usr_e"]


async def test_functions_of_the_connection_keep_their_place(make_writer: Any) -> None:
    writer: Writer = await make_writer()
    seen: list[int] = []

    async def read_then_write(conn: AsyncConnection) -> None:
        row = (await conn.execute(select(stock_items.c.stocked))).one()
        seen.append(row.stocked)
        await (
            Changes()
            .upsert(stock_items, [_stock_row("prd_x", row.stocked * 10, 3)], ["product_id"])
            .apply(conn)
        )

    first = Changes().upsert(stock_items, [_stock_row("prd_x", 2, 1)], ["product_id"])
    last = Changes().upsert(stock_items, [_stock_row("prd_x", 99, 4)], ["product_id"])
    blocker = Changes().events("tests", [_event("stk_blocker", 1)])
    await asyncio.gather(
        writer.write(blocker),
        writer.write(first),
        writer.write(read_then_write),
        writer.write(last),
    )
    assert seen == [2]  # it saw the change queued before it
    assert writer.engine is not None
    async with writer.engine.connect() as conn:
        assert (await conn.execute(select(stock_items.c.stocked))).scalar_one() == 99


async def test_json_and_timestamps_round_trip(make_writer: Any) -> None:
    writer: Writer = await make_writer()
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    await writer.write(
        Changes()
        .upsert(
            carts,
            [
                {
                    "buyer_id": "usr_j",
                    "route_key": 3,
                    "items": [{"product_id": "prd_1", "quantity": 2}],
                    "version": 1,
                }
            ],
            ["buyer_id"],
        )
        .insert(
            outbox,
            [
                {
                    "id": "evt_j",
                    "type": "stock.changed",
                    "source": "tests",
                    "subject": "stk_j",
                    "sequence": 1,
                    "time": moment,
                    "data": {"nested": [1, "two"]},
                }
            ],
        )
    )
    assert writer.engine is not None
    async with writer.engine.connect() as conn:
        cart = (await conn.execute(select(carts))).one()
        event = (await conn.execute(select(outbox))).one()
    assert cart.items == [{"product_id": "prd_1", "quantity": 2}]
    assert event.data == {"nested": [1, "two"]}
    assert event.time == moment and event.time.tzinfo is UTC  # aware on SQLite too


def test_changes_refuse_rows_of_mixed_shape() -> None:
    with pytest.raises(ValueError, match="same columns"):
        Changes().upsert(stock_items, [_stock_row("a", 1, 1), {"product_id": "b"}], ["product_id"])
    with pytest.raises(ValueError, match="keys"):
        Changes().upsert(stock_items, [{"stocked": 1}], ["product_id"])
    assert not Changes().insert(outbox, [])


def test_the_upsert_statement_is_one_cached_object() -> None:
    columns = ("product_id", "stocked")
    first = upsert_statement(stock_items, columns, ("product_id",))
    assert first is upsert_statement(stock_items, columns, ("product_id",))
    assert 'ON CONFLICT ("product_id") DO UPDATE SET "stocked" = excluded."stocked"' in str(first)


async def test_the_driver_path_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The writer's own thread binds rows itself; it must store the very text SQLAlchemy's
    path stores (timestamps compared as text by windowed queries, JSON read back by both)."""
    moment = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    change = (
        Changes()
        .upsert(
            carts,
            [{"buyer_id": "usr_k", "route_key": 3, "items": [{"a": "é", "b": 2}], "version": 1}],
            ["buyer_id"],
        )
        .events("tests", [_event("stk_k", 4)])
        .insert(
            outbox,
            [
                {
                    "id": "evt_k",
                    "type": "stock.changed",
                    "source": "tests",
                    "subject": "stk_k2",
                    "sequence": 1,
                    "time": moment,
                    "data": {"nested": [1, None, "two"], "at": "x"},
                }
            ],
        )
    )
    stored = []
    for path in ("thread", "aiosqlite"):
        database = tmp_path / f"{path}.db"
        engine = create_engine(f"sqlite:///{database}")
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        direct = sqlite_writer_engine(engine) if path == "thread" else None
        writer = Writer(engine, Durability.SYNC, FileLock(f"{database}.writelock"), direct=direct)
        await writer.write(change)
        await writer.close()
        await engine.dispose()
        if direct is not None:
            direct.dispose()
        with sqlite3.connect(database) as raw:
            stored.append(
                [
                    raw.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                    for table in ("carts", "outbox")
                ]
            )
    thread, aiosqlite = stored
    assert thread == aiosqlite
    assert len(thread[1]) == 2
