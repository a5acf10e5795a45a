"""Read leases: a caller's own copy of hot values, never older than an answered write.

An owning actor hands out a value with a lease of ``L`` seconds, and answers every write of
that value only ``L`` seconds after applying it (commit wait). A caller keeps the value until
at most ``L`` seconds after it *asked* for it, measured on its own clock. So a read that starts
after a write has been answered can only be served from a copy asked for after the write was
applied:

    asked + L > now > applied + L   =>   asked > applied

Only durations are compared, never two machines' clocks, so this holds across nodes. Reads that
overlap a write may see either side of it, as they could without the cache. ``L`` is a bound on
the wait, not the wait itself: an owner that knows its lessees tells them to drop their copies
and answers once they have (``actors/lessees.py``, ``invalidate`` below). ``L = 0`` turns the
cache off.

Copies asked for around the same time run out together (``put``). The first read after that goes
to the owner, and the reads of the other keys that ran out would follow it one call later each;
``lapsed_reads`` names the keys that were read while their copy was held and are held no more, so
the first call can ask for them too. A key read less often than every half lease would still
miss that first call now and then, and go out in one of its own: a key read within the last
``WARM_LEASES`` leases counts as in use, and is asked for again with the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Timers may fire a little early and the two processes' clocks tick at slightly different rates:
# a copy is dropped this much before its lease ends.
SAFETY_S = 0.002
# A key read within this many leases is still in use: its copy is renewed with the others.
WARM_LEASES = 4


class LeaseCache(Generic[K, V]):
    """Values held until their lease ends; bounded, oldest leases dropped first."""

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._max_entries = max_entries
        self._clock = clock
        # Keys read while held, by when their copy ends (copies end on half-lease steps, so
        # there are only a few of these sets).
        self._read_until: dict[float, set[K]] = {}
        # When each key was last read from a held copy.
        self._last_read: dict[K, float] = {}
        self._lease_s = 0.0
        # When the owner last told us to drop each key (``invalidate``): a copy asked for
        # before then may hold the value the owner's write replaced.
        self._dropped_at: dict[K, float] = {}

    def now(self) -> float:
        """The cache's clock: take it *before* asking the owner, and pass it to ``put``."""
        return self._clock()

    def get(self, key: K) -> V | None:
        """The held value if its lease has not ended."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        now = self._clock()
        if expires <= now:
            del self._entries[key]
            return None
        readers = self._read_until.get(expires)
        if readers is None:
            readers = self._read_until[expires] = set()
        readers.add(key)
        self._last_read[key] = now
        return value

    def lapsed_reads(self, limit: int = 256) -> list[K]:
        """Keys read while held whose copy has run out since, and is not held again.

        Each key is named once per lapse, and a key not read during its last lease is not
        named, so only values in use are asked for again. Hints older than a lease are dropped.
        """
        now = self._clock()
        lapsed: list[K] = []
        for expires in [ends for ends in self._read_until if ends <= now]:
            readers = self._read_until.pop(expires)
            if expires < now - self._lease_s:
                continue
            while readers and len(lapsed) < limit:
                key = readers.pop()
                if self._held_until(key) <= now:
                    lapsed.append(key)
            if readers:  # over the limit: the rest wait for the next call
                self._read_until[expires] = readers
                break
        return lapsed

    def _held_until(self, key: K) -> float:
        entry = self._entries.get(key)
        return entry[0] if entry is not None else 0.0

    def invalidate(self, keys: list[K]) -> None:
        """The owner has written ``keys``: drop their copies, and refuse any asked for before
        now whose answer is still on its way (actors/lessees.py)."""
        now = self._clock()
        for key in keys:
            self._entries.pop(key, None)
            self._dropped_at[key] = now
        if len(self._dropped_at) > self._max_entries:
            # A copy asked for more than a lease ago ends on arrival anyway.
            since = now - self._lease_s
            self._dropped_at = {k: t for k, t in self._dropped_at.items() if t >= since}

    def put(self, key: K, value: V, asked_at: float, lease_s: float) -> None:
        """Hold ``value``, asked for at ``asked_at``, until its lease ends.

        Copies are dropped at the last multiple of half a lease before their end, not at the end
        itself: copies asked for around the same time then run out together, and the reads that
        follow go to the owner in one batched call instead of one call each. Ending a copy early
        is always safe.
        """
        self._lease_s = lease_s
        step = lease_s / 2
        expires = (asked_at + lease_s - SAFETY_S) // step * step if step > 0 else asked_at
        if expires <= self._clock():
            return
        dropped = self._dropped_at.get(key)
        if dropped is not None and asked_at <= dropped:
            return  # asked before the owner's invalidation: it may be the replaced value
        current = self._entries.get(key)
        if current is not None and current[0] >= expires:
            return  # an answer to an older question arrived late: keep the newer copy
        self._entries.pop(key, None)  # re-insert so dict order stays oldest-lease-first
        self._entries[key] = (expires, value)
        last_read = self._last_read.get(key)
        if last_read is not None and asked_at - last_read < WARM_LEASES * lease_s:
            # Still in use: ask for it again when this copy ends, read or not by then.
            readers = self._read_until.get(expires)
            if readers is None:
                readers = self._read_until[expires] = set()
            readers.add(key)
        if len(self._entries) > self._max_entries:
            self._evict()
        if len(self._last_read) > self._max_entries:
            self._forget_old_reads()

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_old_reads(self) -> None:
        since = self._clock() - WARM_LEASES * self._lease_s
        self._last_read = {k: t for k, t in self._last_read.items() if t >= since}
        if len(self._last_read) > self._max_entries:  # that many keys in use: keep none
            self._last_read.clear()

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        for expires in [ends for ends in self._read_until if ends < now - self._lease_s]:
            del self._read_until[expires]
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]
