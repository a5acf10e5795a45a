"""OrderMemory: orders with work left are always held, settled ones up to the cache's bound
(least recently used out first), and a read from the store never puts back an order older
than one memory held meanwhile."""

from __future__ import annotations

import pytest

from actors.order_memory import OrderMemory, needs_saga
from marketplace.domain.orders import Order, OrderStatus
from tests.unit.factories import make_order

pytestmark = pytest.mark.unit

P, C, X = OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.CANCELLED


def order(n: int, status: OrderStatus = C, version: int = 1, **changes: object) -> Order:
    return make_order(status=status, n=n, version=version, **changes)


def test_work_left_is_pending_or_a_begun_cancellation() -> None:
    assert needs_saga(order(1, P))
    assert needs_saga(order(1, C, failure_reason="cancelled_by_buyer"))
    assert not needs_saga(order(1, C))
    assert not needs_saga(order(1, X, failure_reason="out_of_stock"))
    assert not needs_saga(order(1, OrderStatus.DELIVERED))


def test_open_orders_are_never_let_go_and_settled_ones_only_past_the_bound() -> None:
    memory = OrderMemory(cache_size=2)
    for n in range(5):
        memory.put(order(n, P))
    for n in range(5, 10):
        memory.put(order(n))
    assert len(memory) == 5 + 2
    assert {o.id for o in memory.with_work()} == {order(n).id for n in range(5)}
    assert order(9).id in memory and order(7).id not in memory
    # settled: it joins the cache (most recently used), and the oldest settled one goes
    memory.put(order(0, C, version=2))
    assert len(memory.with_work()) == 4 and len(memory) == 4 + 2
    assert order(0).id in memory and order(8).id not in memory and order(9).id in memory


def test_a_read_makes_an_order_the_most_recently_used() -> None:
    memory = OrderMemory(cache_size=2)
    memory.put(order(1))
    memory.put(order(2))
    assert memory.get(order(1).id) is not None  # 1 is now newer than 2
    memory.put(order(3))
    assert order(1).id in memory and order(2).id not in memory
    assert order(3).id in memory  # `in` is no use: 1 is still the older
    memory.put(order(4))
    assert order(1).id not in memory


def test_a_cancellation_begun_on_a_cached_order_makes_it_open_again() -> None:
    memory = OrderMemory(cache_size=0)
    memory.put(order(1))
    assert len(memory) == 0  # a cache of none holds no settled order
    memory.put(order(1, C, version=2, failure_reason="cancelled_by_buyer"))
    assert [o.id for o in memory.with_work()] == [order(1).id]
    memory.put(order(1, X, version=3, failure_reason="cancelled_by_buyer"))
    assert len(memory) == 0


def test_without_a_bound_every_order_stays() -> None:
    memory = OrderMemory(cache_size=None)
    for n in range(50):
        memory.put(order(n))
    assert len(memory) == 50


def test_what_a_read_finds_is_cached_and_answered() -> None:
    memory = OrderMemory(cache_size=2)
    memory.start_read(order(1).id)
    assert memory.end_read(order(1).id, order(1)) == order(1)
    assert memory.get(order(1).id) == order(1)
    memory.start_read(order(2).id)
    assert memory.end_read(order(2).id, None) is None
    assert order(2).id not in memory


def test_a_read_that_raced_a_change_does_not_put_back_an_older_order() -> None:
    memory = OrderMemory(cache_size=0)  # the change is let go of at once
    memory.start_read(order(1).id)
    memory.put(order(1, X, version=3))  # changed (and let go) while the read was in flight
    # the read answers what it found, but does not keep it: it may be older than the store
    assert memory.end_read(order(1).id, order(1, C, version=1)) == order(1, C, version=1)
    assert order(1).id not in memory
    # once no read of it is in flight, a fresh read is kept again
    bigger = OrderMemory(cache_size=2)
    bigger.start_read(order(1).id)
    bigger.put(order(1, X, version=3))
    bigger.put(order(2))
    bigger.put(order(3))  # order 1 let go
    assert bigger.end_read(order(1).id, order(1, C, version=1)) == order(1, C, version=1)
    assert order(1).id not in bigger
    bigger.start_read(order(1).id)
    assert bigger.end_read(order(1).id, order(1, X, version=3)) == order(1, X, version=3)
    assert bigger.get(order(1).id) == order(1, X, version=3)


def test_a_read_answers_memorys_copy_when_it_is_as_new() -> None:
    memory = OrderMemory(cache_size=2)
    memory.start_read(order(1).id)
    newer = order(1, C, version=2, failure_reason="cancelled_by_buyer")
    memory.put(newer)
    assert memory.end_read(order(1).id, order(1, C, version=1)) == newer
    assert memory.get(order(1).id) == newer


def test_overlapping_reads_of_one_order_are_tracked_until_the_last_ends() -> None:
    memory = OrderMemory(cache_size=2)
    first = order(1)
    memory.start_read(first.id)
    memory.start_read(first.id)
    memory.put(order(1, X, version=2))
    memory.put(order(2))
    memory.put(order(3))  # order 1 let go
    assert memory.end_read(first.id, first) == first and first.id not in memory
    assert memory.end_read(first.id, first) == first and first.id not in memory
