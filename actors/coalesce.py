"""Coalescing of concurrent point reads into batched actor calls.

Under load a gateway replica issues many one-id product or stock reads to the same actor at
once, and each actor call costs far more CPU than the lookup it carries. A ``Coalescer`` keeps
at most one call in flight per target: reads that arrive meanwhile wait and leave together in the
next call. At low load a read goes out at once (no timer, no added latency); under load the
batches grow by themselves. A read always waits for a call that starts after it arrived, so it
never sees state older than its own arrival (a client still reads its own writes).

The one exception is a ``held`` copy: a caller that keeps values under a read lease
(``actors.leases``) passes its cache's lookup, and before each call the reads whose key it now
holds are answered from it. A leased copy is as good as a fresh read (that is the lease's
argument), and without this the reads that waited behind a call would ask again at once for
the values that call has just brought.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[list[K]], Awaitable[dict[K, V]]]
Held = Callable[[K], V | None]


class Coalescer(Generic[K, V]):
    """Batches ``get(key)`` calls into ``fetch(keys)``, one fetch in flight at a time."""

    def __init__(
        self, fetch: Fetch[K, V], max_batch: int = 256, held: Held[K, V] | None = None
    ) -> None:
        self._fetch = fetch
        self._held = held
        self._max_batch = max_batch
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self, key: K) -> V | None:
        """The value of ``key`` (None when ``fetch`` did not return it)."""
        loop = asyncio.get_running_loop()
        if self._drainer is not None and self._loop is not loop:
            # Used from a second event loop (a notebook, a test): do not share futures.
            return (await self._fetch([key])).get(key)
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._drainer is None:
            self._loop = loop
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                if self._held is not None:
                    self._answer_held()
                    if not self._waiting:
                        break
                keys = list(self._waiting)[: self._max_batch]
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._fetch(keys)
                except Exception as exc:
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                except BaseException:  # cancelled: the waiters of this batch get cancelled too
                    self._waiting.update(batch)
                    raise
                for key, futures in batch.items():
                    for future in futures:
                        if not future.done():  # its caller may have given up
                            future.set_result(found.get(key))
        finally:
            self._drainer = None
            # Cancelled mid-fetch (the loop is closing): nobody will answer the rest.
            for futures in self._waiting.values():
                for future in futures:
                    future.cancel()
            self._waiting.clear()

    def _answer_held(self) -> None:
        assert self._held is not None
        for key in list(self._waiting):
            value = self._held(key)
            if value is not None:
                for future in self._waiting.pop(key):
                    if not future.done():
                        future.set_result(value)
