"""Durability modes in one place: how an actor's state change reaches the database.

``sync``: the caller waits until its change is committed. Changes that arrive while a commit is
in flight are grouped into the next transaction (group commit), so many concurrent small writes
cost one commit; declared ``Changes`` in a group are also merged into one statement per table
(see ``marketplace.store.changes``). ``async``: the caller goes on at once and the same batches
commit behind it (a crash loses the tail). ``none``: nothing is written.

A commit that fails because the database is unreachable for the moment (``store.failures``)
reaches the caller as ``TransientFailure``, which clients see as a 503 to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from marketplace import tracing
from marketplace.config import Durability
from marketplace.domain.errors import TransientFailure
from marketplace.store.changes import Changes, apply_all, sqlite_statements
from marketplace.store.failures import database_unavailable, is_transient

log = logging.getLogger(__name__)

Work = Callable[[AsyncConnection], Awaitable[None]]
MAX_BATCH = 256


@dataclass
class _Pending:
    work: Work | Changes
    done: asyncio.Future[None]


class FileLock:
    """An exclusive lock shared by every process that opens the same path.

    SQLite allows one writer at a time; a second one waits in SQLite's busy handler, which
    sleeps in steps of up to 100 ms and so wastes most of the time it waits. Writers that
    queue on ``flock`` instead are woken by the kernel the moment the lock is free.
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def held_here(self) -> Iterator[None]:
        """Hold the lock, blocking this thread while it is taken (for a writer's own thread)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the lock (waiting off the event loop when it is taken)."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


@dataclass
class Writer:
    """Serialises an actor's writes into batched transactions.

    With ``direct`` (a synchronous engine on the same SQLite file), a batch of declared
    ``Changes`` commits in one trip to the writer's own thread, lock and all, instead of one
    trip per statement through aiosqlite. Batches that hold a function of the connection, and
    every other database, go through ``engine``.
    """

    engine: AsyncEngine | None
    mode: Durability
    lock: FileLock | None = None
    direct: Engine | None = None
    merge: bool = True
    # Told (changes, seconds) after each commit: how the owner measures its commits.
    on_commit: Callable[[int, float], None] | None = None
    commits: int = 0
    writes: int = 0
    _queue: list[_Pending] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    _thread: ThreadPoolExecutor | None = None
    _held: PoolProxiedConnection | None = None

    async def write(self, work: Work | Changes) -> None:
        """Persist one change per the mode.

        ``work`` is either declared ``Changes`` (merged with the rest of its batch) or a
        function of the transaction's connection, for a change that must read what it writes.
        """
        if self.mode is Durability.NONE or self.engine is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(work, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        if self.mode is Durability.SYNC:
            # In a trace: the wait for this change's group commit, the commit included.
            with tracing.step("store.commit"):
                await done
        else:
            done.add_done_callback(_log_failure)

    async def write_until_done(self, changes: Changes, what: str) -> None:
        """Commit ``changes``, waiting out a database outage however long it lasts.

        For a change the actor cannot go on without, such as a saga's recorded step: leaving
        it unwritten would leave the work half done until a restart. The same ``changes`` go
        again each time, so a refused row after a failed attempt means that attempt committed
        after all (its answer was lost with the connection).
        """
        failed = False
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TransientFailure),
                wait=wait_exponential(multiplier=0.05, max=2.0),
                before_sleep=lambda _: log.warning(
                    "writing %s failed (the database is unavailable); retrying", what
                ),
                reraise=True,
            ):
                with attempt:
                    try:
                        await self.write(changes)
                    except TransientFailure:
                        failed = True
                        raise
        except IntegrityError:
            if not failed:
                raise
            log.info("writing %s: an earlier attempt had committed", what)

    async def close(self) -> None:
        """Commit what is queued, then give back the SQLite connection this writer holds."""
        await self.drain()
        if self._held is not None:
            held, self._held = self._held, None
            if self._thread is not None:
                # Closed on the thread that used it: sqlite3 connections belong to theirs.
                await asyncio.get_running_loop().run_in_executor(self._thread, held.close)
            else:
                held.close()

    def _exclusive(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.lock.held() if self.lock is not None else _nothing()

    async def drain(self) -> None:
        """Wait until everything queued so far is committed (or has failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        assert self.engine is not None
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._commit(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    continue
                # One bad change must not sink its neighbours: retry each on its own.
                for pending in batch:
                    try:
                        await self._commit([pending])
                    except Exception as exc:
                        _settle(pending, exc)

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        declared = [pending.work for pending in batch if isinstance(pending.work, Changes)]
        if self.direct is not None and len(declared) == len(batch):
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="writer")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._commit_direct, declared)
        else:
            await self._commit_async(batch)
        self.commits += 1
        self.writes += len(batch)
        if self.on_commit is not None:
            self.on_commit(len(batch), time.perf_counter() - started)
        for pending in batch:
            _settle(pending, None)

    def _commit_direct(self, declared: list[Changes]) -> None:
        # On the writer's own thread. The statements are bound first, so the lock is held
        # only while SQLite works (see ``sqlite_statements``).
        assert self.direct is not None
        planned = sqlite_statements(declared, self.direct.dialect, merge=self.merge)
        driver = self._driver_connection()
        with self._exclusive_here():
            sql = "BEGIN IMMEDIATE"
            try:
                driver.execute(sql)
                for sql, rows in planned:
                    driver.executemany(sql, rows)
                sql = "COMMIT"
                driver.execute(sql)
            except BaseException as exc:
                if driver.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        driver.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                if not isinstance(exc, sqlite3.IntegrityError) and self._held is not None:
                    # Anything but a refused row may have left the connection unusable: the
                    # next batch opens a fresh one.
                    self._held.invalidate(exc)
                    self._held = None
                # As SQLAlchemy raises it on every other path (IntegrityError and so on).
                raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc

    def _driver_connection(self) -> sqlite3.Connection:
        # The direct engine's one pooled connection, kept by this writer for its lifetime. It
        # is in autocommit mode (``store.engine``), so BEGIN and COMMIT above are the only ones.
        if self._held is None:
            assert self.direct is not None
            self._held = self.direct.raw_connection()
        driver = self._held.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        return driver

    def _exclusive_here(self) -> contextlib.AbstractContextManager[None]:
        return self.lock.held_here() if self.lock is not None else contextlib.nullcontext()

    async def _commit_async(self, batch: list[_Pending]) -> None:
        assert self.engine is not None
        async with self._exclusive(), self.engine.begin() as conn:
            declared: list[Changes] = []
            for pending in batch:
                if isinstance(pending.work, Changes):
                    declared.append(pending.work)
                    continue
                await apply_all(conn, declared, merge=self.merge)
                declared = []
                await pending.work(conn)
            await apply_all(conn, declared, merge=self.merge)


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _settle(pending: _Pending, exc: BaseException | None) -> None:
    if pending.done.done():
        return
    if exc is None:
        pending.done.set_result(None)
    elif is_transient(exc):
        log.warning("a commit failed while the database was unavailable: %r", exc)
        pending.done.set_exception(database_unavailable(exc))
    else:
        pending.done.set_exception(exc)


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("write-behind change lost", exc_info=done.exception())
