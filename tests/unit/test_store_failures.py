"""Which database failures count as passing (a 503 to retry) and which do not.

The errors are real ones, made by the drivers themselves: a SQLite file held by another
connection, a PostgreSQL port nobody listens on. No database server is needed.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from ray.exceptions import ActorDiedError, ActorUnavailableError
from sqlalchemy import exc as sa

from marketplace.config import Durability
from marketplace.domain.errors import TransientFailure
from marketplace.store.changes import Changes
from marketplace.store.engine import create_engine
from marketplace.store.failures import is_transient
from marketplace.store.tables import outbox
from marketplace.store.writer import Writer
from serve_app import problems

pytestmark = pytest.mark.unit


def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection to a SQLite file whose write lock another connection holds."""
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin immediate")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    yield other
    other.close()
    holder.execute("rollback")
    holder.close()


def sqlite_error(connection: sqlite3.Connection, sql: str) -> sqlite3.Error:
    try:
        connection.execute(sql)
    except sqlite3.Error as error:
        return error
    raise AssertionError(f"{sql!r} did not fail")


def test_a_busy_sqlite_file_is_transient_and_a_missing_table_is_not(
    locked_sqlite: sqlite3.Connection,
) -> None:
    busy = sqlite_error(locked_sqlite, "begin immediate")
    missing = sqlite_error(locked_sqlite, "select * from no_such_table")
    assert is_transient(busy)
    assert not is_transient(missing)
    # As SQLAlchemy raises them.
    assert is_transient(sa.OperationalError("BEGIN IMMEDIATE", None, busy))
    assert not is_transient(sa.OperationalError("SELECT", None, missing))


async def test_an_unreachable_postgres_is_transient() -> None:
    with pytest.raises(Exception) as refused:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{closed_port()}/x", timeout=5)
    assert is_transient(refused.value), repr(refused.value)


def test_refused_rows_and_bugs_are_not_transient() -> None:
    assert not is_transient(sa.IntegrityError("INSERT", None, sqlite3.IntegrityError("unique")))
    assert not is_transient(sa.ProgrammingError("SELECT", None, Exception("syntax")))
    assert not is_transient(ValueError("no"))
    assert not is_transient(KeyError("order"))
    assert is_transient(asyncpg.exceptions.CannotConnectNowError("the database is starting up"))
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    invalidated = sa.DBAPIError("COMMIT", None, Exception("gone"), connection_invalidated=True)
    assert is_transient(invalidated)


async def test_a_write_to_an_unreachable_database_fails_as_transient() -> None:
    engine = create_engine(f"postgresql://postgres@127.0.0.1:{closed_port()}/x")
    writer = Writer(engine, Durability.SYNC)
    row = {
        "id": "evt_1",
        "type": "stock.changed",
        "source": "test",
        "subject": "stk_1",
        "sequence": 1,
        "time": None,
        "data": {},
    }
    try:
        with pytest.raises(TransientFailure) as failed:
            await writer.write(Changes().insert(outbox, [row]))
    finally:
        await engine.dispose()
    assert failed.value.status == 503
    assert is_transient(failed.value.__cause__)  # type: ignore[arg-type]


async def test_the_gateway_answers_an_unavailable_database_or_actor_with_503_a_bug_with_500() -> (
    None
):
    app = FastAPI()
    problems.install(app)

    @app.get("/refused")
    async def refused() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    @app.get("/starting")
    async def starting() -> None:
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

    @app.get("/actor-gone")
    async def actor_gone() -> None:
        raise ActorDiedError()  # its node died: Ray restarts it elsewhere

    @app.get("/actor-unavailable")
    async def actor_unavailable() -> None:
        raise ActorUnavailableError("restarting", None)

    @app.get("/bug")
    async def bug() -> None:
        raise KeyError("oops")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for path in ("/refused", "/starting", "/actor-gone", "/actor-unavailable"):
            reply = await client.get(path)
            assert reply.status_code == 503, reply.text
            assert reply.headers["retry-after"] == "1"
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["code"] == "transient_failure"
        reply = await client.get("/bug")
        assert reply.status_code == 500
        assert reply.json()["code"] == "internal_error"
