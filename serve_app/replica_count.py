"""How many gateway replicas are alive: each one says so to the Limits deployment now and then.

Every ``heartbeat_s`` a replica tells the Limits deployment (``serve_app/shared_limits.py``) that
it is alive and hears back how many replicas did within the last three beats; its per-replica
limits (``ReplicaShare``) take their share of the configured rate from that count. Serve's own
replica context carries the configured replica count, not the live one, which autoscaling moves.
A replica that stops is forgotten three beats later, and one that starts counts from its first
beat: for those few seconds the others' shares are a little small or a little large.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from serve_app.rate_limits import ReplicaShare

log = logging.getLogger("marketplace.gateway")

# A replica not heard from in this many of its beats is counted as gone.
BEATS_REMEMBERED = 3


@dataclass
class Presence:
    """The replicas heard from in the last ``ttl_s`` seconds (kept by the Limits deployment)."""

    ttl_s: float
    _last_seen: dict[str, float] = field(default_factory=dict)

    def heard(self, replica_id: str, now: float | None = None) -> int:
        """``replica_id`` is alive; answers how many replicas are, itself included."""
        now = time.monotonic() if now is None else now
        self._last_seen[replica_id] = now
        return self.count(now)

    def count(self, now: float | None = None) -> int:
        """How many replicas were heard from within ``ttl_s``."""
        now = time.monotonic() if now is None else now
        for gone in [r for r, seen in self._last_seen.items() if now - seen > self.ttl_s]:
            del self._last_seen[gone]
        return len(self._last_seen)


Beat = Callable[[str], Awaitable[int | None]]
"""``replica id -> live replicas``, None when it could not be asked."""


@dataclass
class LiveReplicas:
    """This replica's heartbeat: after each beat, ``shares`` are resized to the live count."""

    beat: Beat
    heartbeat_s: float
    shares: tuple[ReplicaShare, ...]
    replica_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _task: asyncio.Task[None] | None = None

    async def beat_once(self) -> None:
        """Say this replica is alive and resize the shares; an unanswered beat keeps them."""
        count = await self.beat(self.replica_id)
        if count is not None:
            for share in self.shares:
                share.resize(count)

    def start(self) -> None:
        """Beat in the background from now on (on the running loop; without one, never)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None:
            self._task = loop.create_task(self._keep_beating())

    async def _keep_beating(self) -> None:
        while True:
            try:
                await self.beat_once()
            except Exception as exc:
                log.warning("the replica heartbeat failed: %r", exc)
            await asyncio.sleep(self.heartbeat_s)
