"""A catalog shard's ordered change stream: what its read replicas apply, in order.

The shard's sequence number is the sum of its products' versions. Every change (listing,
update, replacement, withdrawal) raises one product's version, so the number only grows, and
it is rebuilt by loading the products after a restart: no epoch is needed, and a replica's or a
session token's number stays meaningful across the shard's restarts (with ``sync`` durability;
with ``async`` a crash may lose writes, and a replica then ahead of its shard is sent a
snapshot).

The log keeps the latest ``limit`` changes; a replica further behind than that, or new, gets a
snapshot of every product instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from marketplace.domain.catalog import Product


@dataclass(frozen=True)
class Change:
    """One product as a change left it: the shard's sequence number after the change, and
    when (wall clock, seconds) the shard made it."""

    seq: int
    product: Product
    made_at: float


class ChangeLog:
    """The latest changes of one shard, by sequence number."""

    def __init__(self, limit: int = 10_000) -> None:
        self.seq = 0
        self._limit = limit
        self._versions: dict[str, int] = {}
        self._changes: deque[Change] = deque()
        # The sequence number before the oldest change kept: a reader behind it needs a snapshot.
        self._floor = 0

    def load(self, products: list[Product]) -> None:
        """Start from these products (a shard's load): no change is kept before them."""
        for product in products:
            self._versions[product.id] = product.version
        self.seq = sum(self._versions.values())
        self._floor = self.seq
        self._changes.clear()

    def record(self, product: Product, made_at: float) -> Change | None:
        """``product`` as a change left it; None when it is no newer than what is known
        (a repeat, or a copy read back that memory already had)."""
        known = self._versions.get(product.id, 0)
        if product.version <= known:
            return None
        self._versions[product.id] = product.version
        self.seq += product.version - known
        change = Change(self.seq, product, made_at)
        self._changes.append(change)
        if len(self._changes) > self._limit:
            self._floor = self._changes.popleft().seq
        return change

    def since(self, seq: int) -> list[Change] | None:
        """The changes after ``seq`` in order; None when they are no longer all kept (or
        ``seq`` is ahead of this log): the reader needs a snapshot."""
        if seq < self._floor or seq > self.seq:
            return None
        # Kept changes are in sequence order: walk back from the newest to the reader's, so a
        # reader near the head (every poll of a replica that keeps up) costs what it lacks,
        # not the whole log.
        newer: list[Change] = []
        for change in reversed(self._changes):
            if change.seq <= seq:
                break
            newer.append(change)
        newer.reverse()
        return newer
