"""Per-key rate limits: a token bucket per login email and per checking-out buyer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Past this many keys the buckets start over: a replica's memory stays bounded whatever the keys.
MAX_KEYS = 100_000


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate_per_minute`` sustained, bursts up to the same amount."""

    rate_per_minute: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def check(self, key: str, now: float | None = None) -> float:
        """0 if allowed (and a token is spent), else seconds until the next token."""
        now = time.monotonic() if now is None else now
        capacity = float(self.rate_per_minute)
        per_second = self.rate_per_minute / 60.0
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > MAX_KEYS:
                self._buckets.clear()
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / per_second
