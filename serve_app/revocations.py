"""Token revocation across gateway replicas.

Every user has a token version in the store (``users.token_version``), written into each token
at login (the ``ver`` claim; a token without one stands for version 0). Changing the password
or the role bumps it and stamps ``users.tokens_revoked_at``. A token whose version is below its
user's current one is refused.

Asking the store on every request would put a database read on every authenticated call, the
gateway's hottest path. Instead each replica polls the store every ``revocation_poll_s`` for
the revocations since its last poll and keeps them in a dict, so checking a token is a dict
lookup. It keeps them only for one token lifetime (plus a margin): a token issued before a
revocation older than that has expired anyway. The replica that makes a change knows it at
once; another replica refuses the old tokens at most one poll interval (plus the poll's query)
later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

log = logging.getLogger("marketplace.gateway")

# How far behind its own clock a replica looks again at each poll: a revocation is stamped with
# the clock of the replica (or the start-up) that made it, at the start of a transaction that
# commits a little later, so one stamped just before the last poll may only be visible now.
CLOCK_MARGIN = timedelta(seconds=60)

Fetch = Callable[[datetime], Awaitable[list[tuple[str, int, datetime]]]]
"""``since -> [(user id, token version, revoked at)]`` of the revocations at or after ``since``
(``marketplace.store.users.UserStore.revocations_since``)."""


@dataclass
class Revocations:
    """One replica's view of recent revocations: user id -> (current token version, when)."""

    fetch: Fetch
    token_ttl_s: float
    poll_s: float
    _versions: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    _polled_at: datetime | None = None
    _poller: asyncio.Task[None] | None = None
    _first_poll: asyncio.Lock = field(default_factory=asyncio.Lock)

    def refuses(self, user_id: str, version: int) -> bool:
        """Whether a token of ``user_id`` carrying ``version`` has been revoked."""
        known = self._versions.get(user_id)
        return known is not None and version < known[0]

    def note(self, user_id: str, version: int, at: datetime | None = None) -> None:
        """``user_id``'s tokens are now at ``version`` (a newer version is never undone)."""
        known = self._versions.get(user_id)
        if known is None or version > known[0]:
            self._versions[user_id] = (version, at or datetime.now(UTC))

    def forget_expired(self, now: datetime) -> None:
        """Drop revocations so old that every token they refuse has expired."""
        cutoff = now - timedelta(seconds=self.token_ttl_s) - CLOCK_MARGIN
        for user_id in [u for u, (_, at) in self._versions.items() if at < cutoff]:
            del self._versions[user_id]

    async def poll(self, now: datetime | None = None) -> None:
        """Read the revocations since the last poll (the first: one token lifetime back)."""
        now = now or datetime.now(UTC)
        start = self._polled_at or now - timedelta(seconds=self.token_ttl_s)
        for user_id, version, at in await self.fetch(start - CLOCK_MARGIN):
            self.note(user_id, version, at)
        self._polled_at = now
        self.forget_expired(now)

    async def ready(self) -> None:
        """Load the recent revocations once, then keep polling in the background.

        Awaited before a token is checked, so a fresh replica never accepts a token revoked
        before it started. A first poll that fails raises (the request answers 503) and the
        next request tries again.
        """
        if self._poller is not None:
            return
        async with self._first_poll:
            if self._poller is None:
                await self.poll()
                self._poller = asyncio.get_running_loop().create_task(self._keep_polling())

    async def _keep_polling(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception as exc:
                # The store is away: keep what is known and try again; meanwhile a revocation
                # made on another replica is not seen here (fail open, as the rest of the
                # authenticated API must keep answering from the actors).
                log.warning("could not poll token revocations: %r", exc)

    async def close(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
