"""Idempotency keys past their window: forgotten from an actor's memory, their rows pruned.

The order coordinators (checkout keys) and the catalog shards (product write keys) keep the keys
inside their window in memory; ``KeySweeps`` is how both let go of the rest, at most once per
``retention_interval_s`` and from the commands that use keys (no timer of its own).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)


class _Dated(Protocol):
    @property
    def created_at(self) -> datetime: ...


def in_window(keys: MutableMapping[str, Any], key: str, cutoff: datetime) -> Any | None:
    """What ``key`` stands for if it was made at or after ``cutoff`` (the start of the keys'
    window); None, and forgotten, if before (a sweep has not come to it yet)."""
    use = keys.get(key)
    if use is not None and _created(use) < cutoff:
        del keys[key]
        return None
    return use


class KeySweeps:
    """One actor's sweeps of its expired keys."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._swept_at = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()

    def now_and_then(
        self,
        keys: MutableMapping[str, Any],
        cutoff: datetime,
        interval_s: float,
        prune: Callable[[datetime], Awaitable[object]] | None,
    ) -> None:
        """If ``interval_s`` passed since the last sweep: drop the ``keys`` (values with a
        ``created_at``) made before ``cutoff``, and run ``prune(cutoff)`` in the background
        (None: this actor leaves the rows to another; one of a kind prunes for all)."""
        now = time.monotonic()
        if now - self._swept_at < interval_s:
            return
        self._swept_at = now
        for key in [k for k, use in keys.items() if _created(use) < cutoff]:
            del keys[key]
        if prune is not None:
            task = asyncio.get_running_loop().create_task(self._prune(prune, cutoff))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the prunes under way (tests, a clean stop)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _prune(
        self, prune: Callable[[datetime], Awaitable[object]], cutoff: datetime
    ) -> None:
        try:
            await prune(cutoff)
        except Exception as exc:  # an outage: the next sweep tries again
            log.warning("pruning expired %s failed: %r", self.what, exc)


def _created(use: _Dated) -> datetime:
    return use.created_at
