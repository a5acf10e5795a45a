"""Lease invalidation (actors/lessees.py): a write answers once every
holder has dropped its copy, or once the lease runs out, never while a copy may still be read."""

from __future__ import annotations

import asyncio

import pytest

from actors.lessees import Lessees
from tests.unit.test_leases import Clock

pytestmark = pytest.mark.unit


def settled(lease_s: float = 0.2) -> tuple[Lessees, Clock]:
    """Lessees past their first lease, when leases of an earlier incarnation have ended."""
    clock = Clock()
    lessees = Lessees(lease_s, clock)
    clock.t += lease_s + 1.0
    return lessees, clock


async def test_a_write_of_a_key_nobody_holds_answers_at_once() -> None:
    lessees, clock = settled()
    lessees.granted("gateway", ["p"])
    clock.t += 1.0  # the copy handed out has ended
    await lessees.invalidate("p")
    await lessees.invalidate("never-read")
    assert lessees.outcomes == {"free": 2, "acked": 0, "waited": 0}


async def test_a_write_answers_once_its_holder_has_dropped_the_copy() -> None:
    lessees, _ = settled(lease_s=30.0)  # a lease the test would not outlive
    lessees.granted("gateway", ["p", "q"])
    write = asyncio.create_task(lessees.invalidate("p"))
    epoch, seq, keys = await lessees.next_invalidations("gateway", "", 0, wait_s=5)
    assert keys == ["p"]
    for _ in range(5):
        await asyncio.sleep(0)
    assert not write.done()  # told, but not yet acknowledged
    await lessees.next_invalidations("gateway", epoch, seq, wait_s=0.01)
    await asyncio.wait_for(write, 5)
    assert lessees.outcomes["acked"] == 1
    # q was not written: nothing more for the lessee.
    assert (await lessees.next_invalidations("gateway", epoch, seq, wait_s=0.01))[2] == []


async def test_a_holder_that_does_not_answer_costs_the_lease_not_a_stale_read() -> None:
    lessees = Lessees(0.05)
    await asyncio.sleep(0.06)  # past the first lease
    lessees.granted("silent", ["p"])
    lessees.granted(None, ["q"])  # a reader that did not say who it is
    await asyncio.gather(lessees.invalidate("p"), lessees.invalidate("q"))
    assert lessees.outcomes == {"free": 0, "acked": 0, "waited": 2}


async def test_a_restarted_owner_waits_out_the_leases_of_the_one_before() -> None:
    before = Lessees(30.0)
    before.granted("gateway", ["p"])
    after = Lessees(0.05)  # restarted: knows no lease of ``before``
    await after.invalidate("p")
    assert after.outcomes == {"free": 0, "acked": 0, "waited": 1}
    # An acknowledgement from the earlier incarnation acknowledges nothing of this one.
    after.granted("gateway", ["p"])
    write = asyncio.create_task(after.invalidate("p"))
    await asyncio.sleep(0)
    epoch, seq, keys = await after.next_invalidations("gateway", before.epoch, 99, wait_s=5)
    assert keys == ["p"] and epoch == after.epoch
    await after.next_invalidations("gateway", epoch, seq, wait_s=0.01)
    await asyncio.wait_for(write, 5)


async def test_a_later_write_of_the_key_answers_only_after_the_earlier_one() -> None:
    lessees, _ = settled(lease_s=30.0)
    lessees.granted("gateway", ["p"])
    first = asyncio.create_task(lessees.invalidate("p"))
    epoch, seq, _ = await lessees.next_invalidations("gateway", "", 0, wait_s=5)
    second = asyncio.create_task(lessees.invalidate("p"))  # nobody holds p any more
    for _ in range(5):
        await asyncio.sleep(0)
    assert not first.done() and not second.done()
    await lessees.next_invalidations("gateway", epoch, seq, wait_s=0.01)
    await asyncio.wait_for(asyncio.gather(first, second), 5)


async def test_a_poll_waits_for_an_invalidation_and_brings_it_at_once() -> None:
    lessees, _ = settled(lease_s=30.0)
    lessees.granted("gateway", ["p"])
    poll = asyncio.create_task(lessees.next_invalidations("gateway", "", 0, wait_s=30))
    await asyncio.sleep(0)
    assert not poll.done()
    write = asyncio.create_task(lessees.invalidate("p"))
    epoch, seq, keys = await asyncio.wait_for(poll, 5)
    assert keys == ["p"]
    await lessees.next_invalidations("gateway", epoch, seq, wait_s=0.01)
    await asyncio.wait_for(write, 5)
