"""LeaseCache: copies live until their lease ends, measured from when they were asked for."""

from __future__ import annotations

import pytest

from actors.leases import SAFETY_S, WARM_LEASES, LeaseCache

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_copy_lives_until_its_lease_ends_from_when_it_was_asked_for() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    asked = cache.now()
    clock.t += 0.1  # the answer took 100 ms to arrive: those count against the lease
    cache.put("a", 1, asked, lease_s=0.25)
    assert cache.get("a") == 1
    clock.t = asked + 0.25 - SAFETY_S
    assert cache.get("a") is None
    assert len(cache) == 0


def test_copies_asked_for_close_together_run_out_together() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    clock.t = 100.01
    cache.put("a", 1, cache.now(), lease_s=1.0)
    clock.t = 100.40
    cache.put("b", 2, cache.now(), lease_s=1.0)
    clock.t = 100.99  # both still held: neither lease ends before 101.0
    assert (cache.get("a"), cache.get("b")) == (1, 2)
    clock.t = 101.0  # the half-lease step both leases end in: both dropped, never later
    assert (cache.get("a"), cache.get("b")) == (None, None)


def test_an_answer_that_arrives_after_its_lease_is_not_kept() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    asked = cache.now()
    clock.t += 1.0
    cache.put("a", 1, asked, lease_s=0.25)
    assert cache.get("a") is None


def test_a_late_answer_to_an_older_question_keeps_the_newer_copy() -> None:
    clock = Clock()
    cache: LeaseCache[str, str] = LeaseCache(clock=clock)
    older = cache.now()
    clock.t += 0.05
    newer = cache.now()
    cache.put("a", "new", newer, lease_s=0.25)
    cache.put("a", "old", older, lease_s=0.25)
    assert cache.get("a") == "new"


def test_the_cache_is_bounded_dropping_the_oldest_lease_first() -> None:
    clock = Clock()
    cache: LeaseCache[int, int] = LeaseCache(max_entries=3, clock=clock)
    for key in range(5):
        clock.t += 0.01
        cache.put(key, key, cache.now(), lease_s=10)
    assert len(cache) == 3
    assert [cache.get(k) for k in range(5)] == [None, None, 2, 3, 4]


def test_lapsed_reads_name_the_keys_read_during_their_lease_once() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    clock.t = 100.01
    for key, value in (("a", 1), ("b", 2), ("unread", 3)):
        cache.put(key, value, cache.now(), lease_s=1.0)
    assert (cache.get("a"), cache.get("b")) == (1, 2)
    assert cache.lapsed_reads() == []  # still held: nothing to ask for again
    clock.t = 101.0  # all three copies end together
    assert cache.get("a") is None  # the read that goes to the owner
    assert sorted(cache.lapsed_reads()) == ["a", "b"]  # "unread" was not in use
    assert cache.lapsed_reads() == []  # named once per lapse


def test_a_key_held_again_is_not_lapsed() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    clock.t = 100.01
    cache.put("a", 1, cache.now(), lease_s=1.0)
    cache.put("b", 2, cache.now(), lease_s=1.0)
    cache.get("a"), cache.get("b")
    clock.t = 101.0
    cache.put("a", 10, cache.now(), lease_s=1.0)  # already asked for again
    assert cache.lapsed_reads() == ["b"]


def test_lapsed_reads_are_capped_and_the_rest_kept_for_the_next_call() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    clock.t = 100.01
    for i in range(5):
        cache.put(str(i), i, cache.now(), lease_s=1.0)
        cache.get(str(i))
    clock.t = 101.0
    first = cache.lapsed_reads(limit=3)
    second = cache.lapsed_reads(limit=3)
    assert len(first) == 3 and len(second) == 2
    assert sorted(first + second) == [str(i) for i in range(5)]


def test_hints_older_than_a_lease_are_forgotten() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    clock.t = 100.01
    cache.put("a", 1, cache.now(), lease_s=1.0)
    cache.get("a")
    clock.t = 102.5  # ended at 101.0, more than a lease ago: no longer a value in use
    assert cache.lapsed_reads() == []


def test_a_key_read_recently_is_renewed_with_the_rest_until_it_cools() -> None:
    clock = Clock()
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    clock.t = 100.25  # steps that binary floats hold exactly
    cache.put("a", 1, cache.now(), lease_s=1.0)
    cache.put("b", 2, cache.now(), lease_s=1.0)
    assert cache.get("a") == 1  # "a" is read once; "b" never
    renewals = 0
    while True:
        clock.t += 1.0  # every copy has ended
        lapsed = cache.lapsed_reads()
        if not lapsed:
            break
        assert lapsed == ["a"]
        renewals += 1
        cache.put("a", 1, cache.now(), lease_s=1.0)  # renewed, and not read this time
    # Renewed while its last read was under WARM_LEASES leases old, then left to lapse.
    assert renewals == WARM_LEASES
    assert cache.lapsed_reads() == []


def test_the_record_of_reads_is_bounded() -> None:
    clock = Clock()
    cache: LeaseCache[int, int] = LeaseCache(max_entries=10, clock=clock)
    for key in range(100):
        clock.t += 0.5
        cache.put(key, key, cache.now(), lease_s=1.0)
        cache.get(key)
    assert len(cache._last_read) <= 10


def test_an_invalidated_copy_is_dropped_and_an_answer_asked_before_is_refused() -> None:
    clock = Clock()
    start = clock.t
    cache: LeaseCache[str, int] = LeaseCache(clock=clock)
    cache.put("p", 1, asked_at=start, lease_s=10.0)
    assert cache.get("p") == 1
    clock.t = start + 1.0
    cache.invalidate(["p"])
    assert cache.get("p") is None
    # An answer to a read asked before the invalidation arrived: it may be the old value.
    cache.put("p", 1, asked_at=start + 0.5, lease_s=10.0)
    assert cache.get("p") is None
    clock.t = start + 2.0
    cache.put("p", 2, asked_at=start + 1.5, lease_s=10.0)  # asked after it: the new value
    assert cache.get("p") == 2
