"""Durability modes in one place: how an actor's state change reaches the database.

``sync``: the caller waits until its change is committed. Changes that arrive while a commit is
in flight are grouped into the next transaction (group commit), so many concurrent small writes
cost one fsync. ``async``: the caller goes on at once and the same batches commit behind it
(a crash loses the tail). ``none``: nothing is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.config import Durability

log = logging.getLogger(__name__)

Work = Callable[[AsyncConnection], Awaitable[None]]
MAX_BATCH = 256


@dataclass
class _Pending:
    work: Work
    done: asyncio.Future[None]


@dataclass
class Writer:
    """Serialises an actor's writes into batched transactions."""

    engine: AsyncEngine | None
    mode: Durability
    _queue: list[_Pending] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    commits: int = 0
    writes: int = 0

    async def write(self, work: Work) -> None:
        """Persist one change (a function of the transaction's connection) per the mode."""
        if self.mode is Durability.NONE or self.engine is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(work, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        if self.mode is Durability.SYNC:
            await done
        else:
            done.add_done_callback(_log_failure)

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
        assert self.engine is not None
        async with self.engine.begin() as conn:
            for pending in batch:
                await pending.work(conn)
        self.commits += 1
        self.writes += len(batch)
        for pending in batch:
            _settle(pending, None)


def _settle(pending: _Pending, exc: BaseException | None) -> None:
    if pending.done.done():
        return
    if exc is None:
        pending.done.set_result(None)
    else:
        pending.done.set_exception(exc)


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("write-behind change lost", exc_info=done.exception())
