"""Engine factory: SQLite in WAL mode (the embedded default) or PostgreSQL through asyncpg."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from marketplace.config import to_async_url


def create_engine(url: str, *, pool_size: int = 4) -> AsyncEngine:
    """An async engine tuned for many actor processes sharing one database.

    SQLite: WAL so readers never block the writer, ``BEGIN IMMEDIATE`` so two writers queue on
    the busy timeout instead of dead-locking on a lock upgrade, and ``synchronous=NORMAL``
    (durable at each WAL checkpoint, the usual WAL trade-off). Errors and logs never show a
    statement's bound values (card tokens, addresses, password hashes): ``hide_parameters``.
    """
    url = to_async_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        # Writers queue for SQLite's one write lock while holding a pooled connection, so a
        # burst of writers (a seed at high concurrency on a loaded machine) waits in the pool
        # too: wait there as long as for the lock itself instead of failing after 30 s.
        engine = create_async_engine(
            url, connect_args={"timeout": 60}, pool_timeout=120, hide_parameters=True
        )
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        hide_parameters=True,
    )


def sqlite_writer_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on the same SQLite file, for a writer that commits from its own
    thread (one trip off the event loop per transaction instead of one per statement); None
    for other databases and for in-memory SQLite, which a second connection would not share."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    direct = create_sync_engine(
        f"sqlite:///{database}",
        connect_args={"timeout": 60, "check_same_thread": False},
        pool_size=1,
        max_overflow=0,
        pool_timeout=120,
        hide_parameters=True,
    )
    _configure_sqlite(direct)
    return direct


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def pool_size(engine: AsyncEngine) -> int | None:
    """How many connections the engine's pool keeps (None for a pool without a fixed size)."""
    pool = engine.pool
    return pool.size() if isinstance(pool, QueuePool) else None
