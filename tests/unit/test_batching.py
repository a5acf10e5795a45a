"""CallBatcher and run_calls: calls of one loop turn travel together, each gets its own answer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from actors.batching import BatchedCallFailed, Call, CallBatcher, run_calls
from marketplace.domain.errors import NotFound, TransientFailure

pytestmark = pytest.mark.unit


class Target:
    """Stands in for an actor: a few public coroutine methods."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def double(self, n: int) -> int:
        return 2 * n

    async def missing(self, key: str) -> None:
        raise NotFound(f"no {key}", key=key)

    async def broken(self) -> None:
        raise KeyError("a bug")

    async def unreachable(self) -> None:  # a read while the database restarts
        raise ConnectionRefusedError(111, "Connection refused")

    async def slow(self) -> str:
        await self.released.wait()
        return "late"

    async def _private(self) -> str:
        return "secret"


class Recorder:
    """A ``send`` that runs the calls on a Target and records each batch."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.batches: list[list[Call]] = []
        self.fail_with: Exception | None = None

    async def __call__(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        self.batches.append(calls)
        await asyncio.sleep(0)  # an answer comes back in a later turn, as over Ray
        if self.fail_with is not None:
            raise self.fail_with
        return await run_calls(self.target, calls)


async def test_calls_made_in_one_turn_share_one_batch() -> None:
    send = Recorder(Target())
    batcher = CallBatcher[Target](send)
    results = await asyncio.gather(*(batcher.call(Target.double, n) for n in range(5)))
    assert results == [0, 2, 4, 6, 8]
    assert len(send.batches) == 1
    assert send.batches[0] == [("double", (n,), {}) for n in range(5)]


async def test_a_lone_call_does_not_wait_for_company() -> None:
    send = Recorder(Target())
    batcher = CallBatcher[Target](send)
    assert await batcher.call(Target.double, 21) == 42
    assert await batcher.call(Target.double, 1) == 2
    assert [len(b) for b in send.batches] == [1, 1]


async def test_each_call_gets_its_own_error() -> None:
    batcher = CallBatcher[Target](Recorder(Target()))
    results = await asyncio.gather(
        batcher.call(Target.double, 1),
        batcher.call(Target.missing, "prd_x"),
        batcher.call(Target.broken),
        batcher.call(Target._private),
        batcher.call(Target.unreachable),
        return_exceptions=True,
    )
    assert results[0] == 2
    assert isinstance(results[1], NotFound) and results[1].details == {"key": "prd_x"}
    assert isinstance(results[2], BatchedCallFailed) and "KeyError" in str(results[2])
    assert isinstance(results[3], AttributeError)
    assert isinstance(results[4], TransientFailure) and results[4].status == 503


async def test_a_failed_batch_fails_every_call_in_it() -> None:
    send = Recorder(Target())
    send.fail_with = ConnectionError("actor gone")
    batcher = CallBatcher[Target](send)
    results = await asyncio.gather(
        *(batcher.call(Target.double, n) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    send.fail_with = None
    assert await batcher.call(Target.double, 4) == 8  # the batcher is still usable


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    target = Target()
    batcher = CallBatcher[Target](Recorder(target))
    impatient = asyncio.ensure_future(asyncio.wait_for(batcher.call(Target.slow), 0.01))
    patient = asyncio.ensure_future(batcher.call(Target.slow))
    with pytest.raises(TimeoutError):
        await impatient
    target.released.set()
    assert await patient == "late"


async def test_batches_are_split_at_max_batch() -> None:
    send = Recorder(Target())
    batcher = CallBatcher[Target](send, max_batch=4)
    assert await asyncio.gather(*(batcher.call(Target.double, n) for n in range(10))) == [
        2 * n for n in range(10)
    ]
    assert [len(b) for b in send.batches] == [4, 4, 2]


async def test_keyword_arguments_travel_with_the_call() -> None:
    send = Recorder(Target())
    batcher = CallBatcher[Target](send)
    assert await asyncio.gather(
        batcher.call(Target.double, n=5), batcher.call(Target.double, 6)
    ) == [
        10,
        12,
    ]
    assert send.batches == [[("double", (), {"n": 5}), ("double", (6,), {})]]


async def test_tell_does_not_wait_and_logs_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    send = Recorder(Target())
    batcher = CallBatcher[Target](send)
    with caplog.at_level(logging.WARNING, logger="actors.batching"):
        batcher.tell(Target.missing, "prd_gone")
        batcher.tell(Target.double, 3)
        assert send.batches == []  # nothing sent before the turn ends
        await asyncio.sleep(0.05)
    assert send.batches == [[("missing", ("prd_gone",), {}), ("double", (3,), {})]]
    assert "missing (not awaited) failed" in caplog.text


async def test_settle_waits_for_told_calls_but_not_for_later_ones() -> None:
    first, later = Target(), Target()
    targets = iter([first, later])

    async def send(calls: list[Call]) -> list[tuple[bool, Any]]:
        return await run_calls(next(targets), calls)

    batcher = CallBatcher[Target](send)
    batcher.tell(Target.slow)
    settled = asyncio.ensure_future(batcher.settle())
    await asyncio.sleep(0.02)
    batcher.tell(Target.slow)  # told while settle waits: not waited for
    await asyncio.sleep(0.02)
    assert not settled.done()  # the first push is still unanswered
    first.released.set()
    await asyncio.wait_for(settled, 1)
    assert not later.released.is_set()
    later.released.set()
    await asyncio.wait_for(batcher.settle(), 1)
    await batcher.settle()  # nothing sent: returns at once


def test_the_batcher_survives_its_event_loop() -> None:
    """A notebook or a script may use one client from several ``asyncio.run`` calls."""
    send = Recorder(Target())
    batcher = CallBatcher[Target](send)
    assert asyncio.run(batcher.call(Target.double, 1)) == 2

    async def abandon() -> None:
        batcher.tell(Target.double, 2)  # queued, then its loop closes before the turn ends

    asyncio.run(abandon())
    assert asyncio.run(batcher.call(Target.double, 3)) == 6


async def test_run_calls_runs_the_calls_concurrently() -> None:
    target = Target()

    async def wait_gate() -> str:
        await target.released.wait()
        return "through"

    async def open_gate() -> None:
        target.released.set()

    target.wait_gate = wait_gate  # type: ignore[attr-defined]
    target.open_gate = open_gate  # type: ignore[attr-defined]
    # Run one after another, the first call would wait forever for the second.
    results = await asyncio.wait_for(
        run_calls(target, [("wait_gate", (), {}), ("open_gate", (), {}), ("double", (), {"n": 2})]),
        5,
    )
    assert results == [(True, "through"), (True, None), (True, 4)]
