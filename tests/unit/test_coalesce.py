"""Coalescing point reads: one fetch in flight, the rest batched behind it."""

from __future__ import annotations

import asyncio

import pytest

from actors.coalesce import Coalescer

pytestmark = pytest.mark.unit


class Source:
    """A fetch that records its batches and waits for the test to release each one."""

    def __init__(self, data: dict[str, int]) -> None:
        self.data = data
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_next: Exception | None = None

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.batches.append(list(keys))
        await self.release.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return {key: self.data[key] for key in keys if key in self.data}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_reads_during_a_fetch_leave_together_in_the_next() -> None:
    source = Source({"a": 1, "b": 2, "c": 3})
    reader: Coalescer[str, int] = Coalescer(source.fetch)
    first = asyncio.create_task(reader.get("a"))
    await settle()
    assert source.batches == [["a"]]  # the first read goes out at once
    later = [asyncio.create_task(reader.get(key)) for key in ("b", "c", "b", "a")]
    await settle()
    assert source.batches == [["a"]]  # the rest wait for the call in flight
    source.release.set()
    assert await first == 1
    assert await asyncio.gather(*later) == [2, 3, 2, 1]
    assert source.batches == [["a"], ["b", "c", "a"]]  # one batch, each key once


async def test_an_unknown_key_is_none() -> None:
    source = Source({"a": 1})
    source.release.set()
    reader: Coalescer[str, int] = Coalescer(source.fetch)
    assert await asyncio.gather(reader.get("a"), reader.get("zzz")) == [1, None]


async def test_a_failed_fetch_fails_its_batch_only() -> None:
    source = Source({"a": 1, "b": 2})
    reader: Coalescer[str, int] = Coalescer(source.fetch)
    source.fail_next = ConnectionError("actor died")
    doomed = asyncio.create_task(reader.get("a"))
    await settle()
    fine = asyncio.create_task(reader.get("b"))
    source.release.set()
    with pytest.raises(ConnectionError, match="actor died"):
        await doomed
    assert await fine == 2


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    source = Source({"a": 1, "b": 2})
    reader: Coalescer[str, int] = Coalescer(source.fetch)
    blocker = asyncio.create_task(reader.get("a"))
    await settle()
    quitter = asyncio.create_task(reader.get("b"))
    stayer = asyncio.create_task(reader.get("b"))
    await settle()
    quitter.cancel()
    source.release.set()
    assert await stayer == 2 and await blocker == 1
    assert quitter.cancelled()


async def test_batches_are_capped() -> None:
    source = Source({str(i): i for i in range(10)})
    reader: Coalescer[str, int] = Coalescer(source.fetch, max_batch=4)
    first = asyncio.create_task(reader.get("0"))
    await settle()
    rest = [asyncio.create_task(reader.get(str(i))) for i in range(1, 10)]
    await settle()
    source.release.set()
    assert [await first, *await asyncio.gather(*rest)] == list(range(10))
    assert [len(batch) for batch in source.batches] == [1, 4, 4, 1]


async def test_reads_held_by_the_caller_are_answered_without_another_call() -> None:
    """With a ``held`` lookup (a lease cache), reads that waited behind a call take its answer."""
    source = Source({"a": 1, "b": 2, "c": 3})
    cache: dict[str, int] = {}

    async def fetch_and_hold(keys: list[str]) -> dict[str, int]:
        found = await source.fetch(keys)
        cache.update(found)
        return found

    reader: Coalescer[str, int] = Coalescer(fetch_and_hold, held=cache.get)
    first = asyncio.create_task(reader.get("a"))
    await settle()
    later = [asyncio.create_task(reader.get(key)) for key in ("a", "b", "a")]
    await settle()
    source.release.set()
    assert [await first, *await asyncio.gather(*later)] == [1, 1, 2, 1]
    # "a" came back with the first call and is held: only "b" is asked for again.
    assert source.batches == [["a"], ["b"]]


async def test_without_a_held_copy_a_waiting_read_asks_again() -> None:
    source = Source({"a": 1})
    reader: Coalescer[str, int] = Coalescer(source.fetch, held=lambda key: None)
    first = asyncio.create_task(reader.get("a"))
    await settle()
    second = asyncio.create_task(reader.get("a"))
    await settle()
    source.release.set()
    assert (await first, await second) == (1, 1)
    assert source.batches == [["a"], ["a"]]
