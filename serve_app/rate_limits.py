"""Rate limits: token buckets per key, and the sign-in policy built from them.

``RateLimiter`` is one bucket per key. ``SignInPolicy`` decides logins and registrations from
four of them; the gateway replicas share one policy through the Limits deployment
(``serve_app/shared_limits.py``), so its limits do not grow with the replica count.
``LocalSignInLimits`` runs the same policy in the calling process (tests, one replica).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

# Past this many keys the least recently used bucket is dropped: memory stays bounded whatever
# the keys, and a key under attack, being in use, is never the one dropped.
MAX_KEYS = 100_000


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate_per_minute`` sustained, bursts up to the same amount."""

    rate_per_minute: int
    max_keys: int = MAX_KEYS
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def check(self, key: str, now: float | None = None) -> float:
        """0 if allowed (and a token is spent), else seconds until the next token."""
        now = time.monotonic() if now is None else now
        capacity = float(self.rate_per_minute)
        per_second = self.rate_per_minute / 60.0
        tokens, last = self._buckets.pop(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * per_second)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)  # now the most recent
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) / per_second

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class SignInPolicy:
    """Login and registration limits for the whole gateway.

    A login spends a token of its (account, address) pair and one of its address: one address
    can neither guess one password fast nor many, and a flood against an account from one
    address does not lock its owner out elsewhere (no bucket is the account's alone).
    A registration spends one of its address and one of everyone's: accounts cannot be made
    without bound, and the global bucket caps the hashing that sign-ups cost.
    """

    login_per_account: RateLimiter
    login_per_address: RateLimiter
    registration_per_address: RateLimiter
    registration_overall: RateLimiter

    @classmethod
    def of(
        cls,
        *,
        login_per_account: int,
        login_per_address: int,
        registration_per_address: int,
        registration_overall: int,
    ) -> SignInPolicy:
        """A policy with these rates per minute."""
        return cls(
            RateLimiter(login_per_account),
            RateLimiter(login_per_address),
            RateLimiter(registration_per_address),
            RateLimiter(registration_overall),
        )

    def login(self, account: str, address: str, now: float | None = None) -> float:
        """0 if ``account`` may try a password from ``address`` now, else seconds to wait."""
        return _first_wait(
            (self.login_per_account, f"{address} {account}"),
            (self.login_per_address, address),
            now=now,
        )

    def register(self, address: str, now: float | None = None) -> float:
        """0 if ``address`` may register an account now, else seconds to wait."""
        return _first_wait(
            (self.registration_per_address, address), (self.registration_overall, ""), now=now
        )


def _first_wait(*checks: tuple[RateLimiter, str], now: float | None) -> float:
    # Stops at the first refusal, so a refused attempt spends no token of the later buckets.
    for limiter, key in checks:
        wait = limiter.check(key, now)
        if wait:
            return wait
    return 0.0


class SignInLimits(Protocol):
    """What a gateway replica asks before checking a password or making an account."""

    async def login(self, account: str, address: str) -> float:
        """0 if allowed (a token spent), else seconds until the next attempt may go."""
        ...

    async def register(self, address: str) -> float:
        """0 if allowed (a token spent), else seconds until the next registration may go."""
        ...


@dataclass
class LocalSignInLimits:
    """``SignInLimits`` kept in this process (a lone replica, tests)."""

    policy: SignInPolicy

    async def login(self, account: str, address: str) -> float:
        """``SignInPolicy.login`` now."""
        return self.policy.login(account, address)

    async def register(self, address: str) -> float:
        """``SignInPolicy.register`` now."""
        return self.policy.register(address)


@dataclass
class ReplicaShare:
    """One replica's part of a limit that every replica keeps in its own buckets.

    Checkouts are limited per buyer in each gateway replica, since asking a shared place would
    add a call to every checkout. Each replica's buckets hold the configured rate divided by
    the live replica count (``resize``, from ``serve_app/replica_count.py``), so the rate a
    buyer meets stays at most the configured one however many replicas serve them: spread over
    the replicas, their checkouts add up to it; all on one replica, they meet its share.
    """

    rate_per_minute: int
    replicas: int = 1
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.rate_per_minute)
        self.resize(self.replicas)

    def resize(self, replicas: int) -> None:
        """``replicas`` are alive now: this one keeps their share of the rate (at least 1)."""
        self.replicas = max(1, replicas)
        # The buckets keep their tokens: a fuller one is cut to the new capacity at its next
        # check, an emptier one refills at the new rate.
        self.limiter.rate_per_minute = max(1, self.rate_per_minute // self.replicas)

    def check(self, key: str, now: float | None = None) -> float:
        """``RateLimiter.check`` at this replica's share."""
        return self.limiter.check(key, now)
