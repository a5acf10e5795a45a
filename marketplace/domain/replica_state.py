"""What a catalog read replica holds: its shard's products as of a point of the change stream.

The replica receives the shard's changes in order (``marketplace.domain.change_log``) and
applies each ``delay_s`` after the shard made it (``MARKETPLACE_REPLICATION_DELAY_MS``; 0 applies
on receipt). A change received but not applied yet makes the replica *stale* for that product:
a read of it answers a version older than one the shard has already answered.

Times are wall-clock seconds, the shard's ``made_at`` against the replica's now: on two nodes
the measured lag includes their clocks' difference (NTP keeps it to milliseconds).
"""

from __future__ import annotations

from collections import Counter, deque

from marketplace.domain.catalog import Product, SearchIndex
from marketplace.domain.change_log import Change


class ReplicaState:
    """A shard's products and search index as applied up to ``applied``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.products: dict[str, Product] = {}
        self.index = SearchIndex()
        # The shard's sequence number applied here, and the newest one received.
        self.applied = 0
        self.known = 0
        self._pending: deque[Change] = deque()
        self._pending_ids: Counter[str] = Counter()

    def reset(self, seq: int, products: list[Product]) -> None:
        """Start again from a snapshot of the whole shard at ``seq`` (applied at once)."""
        self.products = {product.id: product for product in products}
        self.index = SearchIndex()
        for product in products:
            self.index.upsert(product)
        self.applied = self.known = seq
        self._pending.clear()
        self._pending_ids.clear()

    def receive(self, changes: list[Change]) -> None:
        """Queue ``changes`` (in stream order) to be applied when due; repeats are ignored."""
        for change in changes:
            if change.seq <= self.known:
                continue
            self.known = change.seq
            self._pending.append(change)
            self._pending_ids[change.product.id] += 1

    def apply_due(self, now: float) -> list[float]:
        """Apply the queued changes due by ``now``, in order; the lag of each (applied at
        ``now``, made at the shard's ``made_at``), in seconds."""
        lags: list[float] = []
        while self._pending and self._pending[0].made_at + self.delay_s <= now:
            change = self._pending.popleft()
            product = change.product
            self._pending_ids[product.id] -= 1
            if not self._pending_ids[product.id]:
                del self._pending_ids[product.id]
            current = self.products.get(product.id)
            if current is None or current.version < product.version:
                self.products[product.id] = product
                self.index.upsert(product)
            self.applied = change.seq
            lags.append(max(now - change.made_at, 0.0))
        return lags

    def next_due(self) -> float | None:
        """When the oldest queued change is due (None when none is queued)."""
        return self._pending[0].made_at + self.delay_s if self._pending else None

    def stale(self, product_id: str) -> bool:
        """Whether a newer version of the product has been received and not applied yet."""
        return product_id in self._pending_ids
