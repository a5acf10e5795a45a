"""The history recorder: invoke and complete times from its clock, outcomes, operations left in
flight, the recording block, concurrent asyncio clients, and the JSON lines round trip."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from marketplace.consistency import History, Kind, Operation, Outcome

pytestmark = pytest.mark.unit


def ticking() -> History:
    """A history whose clock says 0, 1, 2, ... on successive calls."""
    ticks = itertools.count()
    return History(clock=lambda: float(next(ticks)))


def test_invoke_then_complete_records_both_times_and_the_version() -> None:
    history = ticking()
    pending = history.invoke("c1", "write", "p1")
    op = history.complete(pending, 2)
    assert op == Operation(0, "c1", Kind.WRITE, "p1", 0.0, 1.0, Outcome.OK, 2)
    assert history.operations() == [op]


def test_fail_and_unknown_record_their_outcomes() -> None:
    history = ticking()
    failed = history.fail(history.invoke("c1", Kind.WRITE, "p1"))
    unknown = history.unknown(history.invoke("c1", Kind.WRITE, "p1"), version=3)
    assert (failed.outcome, failed.version) == (Outcome.FAILED, None)
    assert (unknown.outcome, unknown.version) == (Outcome.UNKNOWN, 3)


def test_an_operation_closes_once() -> None:
    history = ticking()
    pending = history.invoke("c1", Kind.READ, "p1")
    history.complete(pending, 1)
    with pytest.raises(ValueError, match="not in flight"):
        history.fail(pending)


def test_operations_in_flight_read_as_unknown_ending_now() -> None:
    history = ticking()
    history.invoke("c1", Kind.WRITE, "p1")  # t=0, never closed
    [op] = history.operations()  # t=1
    assert (op.outcome, op.invoke, op.complete) == (Outcome.UNKNOWN, 0.0, 1.0)
    assert len(history) == 1


def test_recording_block_records_ok_refused_and_exceptions() -> None:
    history = ticking()
    with history.recording("c1", Kind.READ, "p1") as call:
        call.version, call.replica = 4, "replica-2"
    with history.recording("c1", Kind.WRITE, "p1") as call:
        call.failed()
    with pytest.raises(TimeoutError), history.recording("c1", Kind.WRITE, "p1"):
        raise TimeoutError
    with history.recording("c1", Kind.WRITE, "p1"):
        pass  # no version learnt: the write may have happened

    def refusal(exc: BaseException) -> bool:
        return isinstance(exc, ValueError)

    with pytest.raises(ValueError), history.recording("c1", "write", "p1", refused=refusal):
        raise ValueError("a refusal changes nothing")
    outcomes = [(o.outcome, o.version, o.replica) for o in history.operations()]
    assert outcomes == [
        (Outcome.OK, 4, "replica-2"),
        (Outcome.FAILED, None, None),
        (Outcome.UNKNOWN, None, None),
        (Outcome.UNKNOWN, None, None),
        (Outcome.FAILED, None, None),
    ]


async def test_concurrent_clients_get_distinct_ids_and_ordered_times() -> None:
    history = History()

    async def client(name: str) -> None:
        for version in range(50):
            pending = history.invoke(name, Kind.READ, "p1")
            await asyncio.sleep(0)
            history.complete(pending, version)

    await asyncio.gather(*(client(f"c{i}") for i in range(20)))
    ops = history.operations()
    assert len(ops) == 1000
    assert len({o.id for o in ops}) == 1000
    assert all(o.invoke <= o.complete for o in ops)
    for name in ("c0", "c19"):
        mine = [o for o in ops if o.client == name]
        assert [o.version for o in mine] == list(range(50))


def test_json_lines_round_trip(tmp_path: Path) -> None:
    history = ticking()
    history.set_initial("p2", 7)
    history.complete(history.invoke("c1", Kind.WRITE, "p1"), 2)
    read = history.invoke("c2", Kind.READ, "p2")
    history.complete(read, 7, replica="r1")
    history.unknown(history.invoke("c1", Kind.WRITE, "p2"))
    path = tmp_path / "history.jsonl"
    history.save(path)

    lines = path.read_text().splitlines()
    assert len(lines) == 4  # the header and three operations
    assert json.loads(lines[2])["replica"] == "r1"
    loaded = History.load(path)
    assert loaded.operations() == history.operations()
    assert loaded.initial_of("p2") == 7
    assert loaded.initial_of("p1") == 1
    # New operations in the loaded history do not reuse ids.
    assert loaded.invoke("c3", Kind.READ, "p1").id == 3


def test_load_refuses_another_format(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"format": "something else"}\n')
    with pytest.raises(ValueError, match=r"not a marketplace\.history/1"):
        History.load(path)
