"""The owner's side of read leases: who holds a copy of what, so a write need not wait them out.

``actors/leases.py`` makes a write answer only once every copy handed out before it has run out:
a lease later. Waiting the whole lease made every product write take at least that long (0.25 s
by default). An owner that knows its lessees can do better: it tells each one holding a copy of
the written key to drop it, and answers as soon as all of them have said they did, or when the
lease runs out, whichever comes first. The lease stays the bound: a lessee that does not answer
(busy, dead, cut off) costs the write the wait it cost before, never a stale read.

Lessees fetch their invalidations with a long poll (``next_invalidations``), acknowledging in
each call what the previous one brought, after they dropped it: a write is answered one round
trip after it is applied when its lessees are listening. A copy that a lessee receives after it
dropped the key, from a read it asked for before the drop, is refused by the lessee
(``LeaseCache.invalidate``), so an answer that crossed the invalidation cannot bring the old
value back.

An owner that restarts has forgotten the leases its earlier incarnation granted: for one lease
after it starts every write waits the lease out, as before. Acknowledgements carry the
incarnation (``epoch``) they answer, so a lessee's count from before a restart acknowledges
nothing of the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# A read whose caller did not say who it is: its copy cannot be invalidated, only waited out.
ANONYMOUS = ""
# A lessee not heard from (no poll, no read) for this long is forgotten with its queue.
FORGET_AFTER_S = 120.0


@dataclass
class _Lessee:
    """One lessee's queue of invalidations, and how far it has acknowledged them."""

    pending: list[tuple[int, str]] = field(default_factory=list)
    acked: int = 0
    seen: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    acked_changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class Lessees:
    """The lessees holding each key, and the invalidations a write sends them."""

    def __init__(self, lease_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_s = lease_s
        self.epoch = uuid.uuid4().hex
        self._clock = clock
        # key -> lessee -> when its copy ends, on this clock (after the lessee's own end: the
        # lessee counts from when it asked, which was before this grant).
        self._holders: dict[str, dict[str, float]] = {}
        self._lessees: dict[str, _Lessee] = {}
        self._seq = 0
        self._swept_at = clock()
        # Copies an earlier incarnation handed out end by then, at the latest.
        self._unknown_until = clock() + lease_s
        # key -> the wait of the last write to it: a later write of the key answers after it.
        self._writes: dict[str, asyncio.Future[None]] = {}
        # What writes did: "free" (no copy out), "acked" (every holder dropped it), "waited"
        # (the lease ran out first).
        self.outcomes: dict[str, int] = {"free": 0, "acked": 0, "waited": 0}

    def granted(self, lessee: str | None, keys: Iterable[str]) -> None:
        """``lessee`` (None: anonymous) was just handed copies of ``keys`` for a lease."""
        now = self._clock()
        ends = now + self.lease_s
        who = lessee or ANONYMOUS
        for key in keys:
            self._holders.setdefault(key, {})[who] = ends
        if lessee:
            self._lessee(lessee).seen = now
        if now - self._swept_at > 4 * self.lease_s:
            # Copies of keys that are never written end without a write to pop them.
            self._swept_at = now
            for held in [k for k, by in self._holders.items() if max(by.values()) <= now]:
                del self._holders[held]

    async def invalidate(self, key: str) -> None:
        """Return once no copy of ``key`` handed out before now can be read: every holder has
        dropped it, or its lease has ended. Call after the write is applied."""
        now = self._clock()
        holders = {who: ends for who, ends in self._holders.pop(key, {}).items() if ends > now}
        earlier = self._writes.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes[key] = done
        try:
            await self._wait_for(key, holders, now)
            if earlier is not None:
                # A write of the key answered before this one's copies were all dropped could
                # otherwise let this one answer first, with the earlier value still held.
                await asyncio.shield(earlier)
        finally:
            done.set_result(None)
            if self._writes.get(key) is done:
                del self._writes[key]

    async def next_invalidations(
        self, lessee: str, epoch: str, acked: int, wait_s: float
    ) -> tuple[str, int, list[str]]:
        """The keys ``lessee`` must drop: ``(epoch, seq, keys)``, waiting up to ``wait_s`` for
        some. ``acked`` is the ``seq`` of the last answer of this ``epoch`` it has applied."""
        state = self._lessee(lessee)
        state.seen = self._clock()
        if epoch == self.epoch and acked > state.acked:
            async with state.acked_changed:
                state.acked = acked
                state.pending = [(seq, key) for seq, key in state.pending if seq > acked]
                state.acked_changed.notify_all()
        if not state.pending:
            state.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.arrived.wait(), wait_s)
        self._forget_silent()
        if not state.pending:
            return self.epoch, state.acked, []
        return self.epoch, state.pending[-1][0], [key for _, key in state.pending]

    async def _wait_for(self, key: str, holders: dict[str, float], now: float) -> None:
        if not holders and now >= self._unknown_until:
            self.outcomes["free"] += 1
            return
        deadline = max([*holders.values(), self._unknown_until])
        if ANONYMOUS in holders or now < self._unknown_until:
            self.outcomes["waited"] += 1
            await asyncio.sleep(deadline - now)
            return
        acks = []
        for who in holders:
            self._seq += 1
            state = self._lessee(who)
            state.pending.append((self._seq, key))
            state.arrived.set()
            acks.append(self._acked(state, self._seq))
        try:
            await asyncio.wait_for(asyncio.gather(*acks), deadline - now)
            self.outcomes["acked"] += 1
        except TimeoutError:
            self.outcomes["waited"] += 1

    @staticmethod
    async def _acked(state: _Lessee, seq: int) -> None:
        async with state.acked_changed:
            await state.acked_changed.wait_for(lambda: state.acked >= seq)

    def _lessee(self, lessee: str) -> _Lessee:
        state = self._lessees.get(lessee)
        if state is None:
            state = self._lessees[lessee] = _Lessee(seen=self._clock())
        return state

    def _forget_silent(self) -> None:
        cutoff = self._clock() - FORGET_AFTER_S
        for lessee in [who for who, state in self._lessees.items() if state.seen < cutoff]:
            del self._lessees[lessee]
