"""What an order coordinator keeps of its orders in memory: every order with work left, and
the settled ones up to a bound, least recently used out first (issue #18, bounded growth).

With ``sync`` durability the store holds every order a coordinator acknowledged, so a settled
order it let go of is read again on demand; with ``none`` or ``async`` memory may be the only
copy (or ahead of it), and nothing is let go (``cache_size`` None).
"""

from __future__ import annotations

from collections import Counter

from actors.lru import LruCache
from marketplace.domain.orders import Order, OrderStatus


def needs_saga(order: Order) -> bool:
    """Pending orders, and confirmed ones whose cancellation was begun, still have work (the
    store's ``orders.open_work`` selects the same rows)."""
    return order.status is OrderStatus.PENDING or (
        order.status is OrderStatus.CONFIRMED and order.failure_reason is not None
    )


class OrderMemory:
    """Orders by id: all those that need their saga, and at most ``cache_size`` others (None:
    all of them).

    An order with work left is never let go: a saga, a resumed one or a request under the
    order's lock may be working on it, and a restart resumes it from memory. A settled order
    can go at any time, since the store's row is as new as what memory held.

    Reading an order from the store races with changes to it: a read that began before the
    order changed (and was let go again) would put the old version back. So a read is
    bracketed by ``start_read`` and ``end_read``, and what it found is kept only when the
    order did not change meanwhile.
    """

    def __init__(self, cache_size: int | None) -> None:
        self.cache_size = cache_size
        self.open: dict[str, Order] = {}
        self.settled: LruCache[str, Order] = LruCache(cache_size)
        # Reads from the store in flight, by order id; and the ids changed while one was.
        self._reads: Counter[str] = Counter()
        self._changed: set[str] = set()

    def __len__(self) -> int:
        return len(self.open) + len(self.settled)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.open or order_id in self.settled

    def get(self, order_id: str) -> Order | None:
        """The order if memory holds it (a settled one becomes the most recently used)."""
        order = self.open.get(order_id)
        return self.settled.get(order_id) if order is None else order

    def put(self, order: Order) -> None:
        """Hold ``order`` as it was just stored (or loaded), replacing what memory held of it."""
        if order.id in self._reads:
            self._changed.add(order.id)
        self._place(order)

    def values(self) -> list[Order]:
        """Every order held, those with work left first."""
        return [*self.open.values(), *self.settled.values()]

    def with_work(self) -> list[Order]:
        """The orders whose saga has work left."""
        return list(self.open.values())

    def start_read(self, order_id: str) -> None:
        """A read of ``order_id`` from the store begins."""
        self._reads[order_id] += 1

    def end_read(self, order_id: str, found: Order | None) -> Order | None:
        """A read begun with ``start_read`` found ``found``: the order to answer. Memory's
        copy when it holds one at least as new; else ``found``, which is kept unless the order
        changed while it was read (then ``found`` may be older than the store's row)."""
        changed = order_id in self._changed
        self._reads[order_id] -= 1
        if not self._reads[order_id]:
            del self._reads[order_id]
            self._changed.discard(order_id)
        held = self.get(order_id)
        if found is None or (held is not None and held.version >= found.version):
            return held
        if not changed:
            self._place(found)
        return found

    def _place(self, order: Order) -> None:
        if needs_saga(order):
            self.settled.pop(order.id, None)
            self.open[order.id] = order
            return
        self.open.pop(order.id, None)
        self.settled[order.id] = order
