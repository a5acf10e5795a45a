"""Seller dashboards projected from order snapshots (invariant I6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.orders import SOLD_STATUSES, Order, OrderStatus
from marketplace.domain.sellers import Dashboard, SellerOrderFact, facts_of
from tests.unit.factories import SELLER_A, SELLER_B, T0, make_item, make_order

pytestmark = pytest.mark.unit


def test_facts_of_splits_by_seller() -> None:
    order = make_order(
        (
            make_item(1, SELLER_A, 2, 300),
            make_item(2, SELLER_B, 1, 1000),
            make_item(3, SELLER_A, 5, 10),
        ),
        status=OrderStatus.CONFIRMED,
        version=2,
    )
    facts = {fact.seller_id: fact for fact in facts_of(order)}
    assert set(facts) == {SELLER_A, SELLER_B}
    assert (facts[SELLER_A].items_sold, facts[SELLER_A].revenue_cents) == (7, 650)
    assert (facts[SELLER_B].items_sold, facts[SELLER_B].revenue_cents) == (1, 1000)
    for fact in facts.values():
        assert (fact.order_id, fact.order_version, fact.status) == (order.id, 2, order.status)
        assert fact.counts
    assert sum(f.revenue_cents for f in facts.values()) == order.total_cents


def fact(status: OrderStatus, items: int = 3, revenue: int = 900) -> SellerOrderFact:
    return SellerOrderFact(
        order_id="ord_x",
        seller_id=SELLER_A,
        order_version=1,
        status=status,
        items_sold=items,
        revenue_cents=revenue,
    )


def figures(dashboard: Dashboard) -> tuple[int, int, int, int]:
    return (
        dashboard.orders_count,
        dashboard.items_sold,
        dashboard.revenue_cents,
        dashboard.open_orders,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (OrderStatus.PENDING, (0, 0, 0, 0)),
        (OrderStatus.CANCELLED, (0, 0, 0, 0)),
        (OrderStatus.CONFIRMED, (1, 3, 900, 1)),
        (OrderStatus.SHIPPED, (1, 3, 900, 0)),
        (OrderStatus.DELIVERED, (1, 3, 900, 0)),
    ],
)
def test_add_counts_in_and_out(status: OrderStatus, expected: tuple[int, int, int, int]) -> None:
    dashboard = Dashboard(seller_id=SELLER_A)
    dashboard.add(fact(status), +1)
    assert figures(dashboard) == expected
    assert fact(status).counts == (status in SOLD_STATUSES)
    dashboard.add(fact(status), -1)
    assert figures(dashboard) == (0, 0, 0, 0)


def test_public() -> None:
    dashboard = Dashboard(seller_id=SELLER_A)
    assert dashboard.public()["as_of"] is None
    dashboard.add(fact(OrderStatus.CONFIRMED), +1)
    dashboard.as_of = T0
    assert dashboard.public() == {
        "seller_id": SELLER_A,
        "orders_count": 1,
        "items_sold": 3,
        "revenue_cents": 900,
        "open_orders": 1,
        "as_of": T0.isoformat(),
    }


PATHS = [
    [OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED],
    [OrderStatus.CONFIRMED, OrderStatus.CANCELLED],
    [OrderStatus.CANCELLED],
    [OrderStatus.CONFIRMED],
    [],
]


@settings(max_examples=200, deadline=None)
@given(
    orders=st.lists(
        st.tuples(
            st.lists(
                st.tuples(
                    st.sampled_from([SELLER_A, SELLER_B]),
                    st.integers(min_value=1, max_value=5),
                    st.integers(min_value=0, max_value=5000),
                ),
                min_size=1,
                max_size=4,
            ),
            st.sampled_from(range(len(PATHS))),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=8,
    )
)
def test_incremental_dashboard_equals_sum_over_orders(
    orders: list[tuple[list[tuple[str, int, int]], int, int]],
) -> None:
    """Replacing each order's old facts by its new ones keeps the dashboard equal to the sum."""
    dashboards = {s: Dashboard(seller_id=s) for s in (SELLER_A, SELLER_B)}
    latest: dict[str, Order] = {}
    for n, (lines, path_index, steps) in enumerate(orders):
        items = tuple(make_item(i, s, q, p) for i, (s, q, p) in enumerate(lines))
        order = make_order(items, n=n)
        snapshots = [order]
        for step, status in enumerate(PATHS[path_index][:steps]):
            order = order.transition(status, T0 + timedelta(seconds=step))
            snapshots.append(order)
        previous: Order | None = None
        for snapshot in snapshots:
            if previous is not None:
                for old in facts_of(previous):
                    dashboards[old.seller_id].add(old, -1)
            for new in facts_of(snapshot):
                dashboards[new.seller_id].add(new, +1)
            previous = snapshot
        latest[order.id] = order
    for seller, dashboard in dashboards.items():
        sold = [
            [i for i in o.items if i.seller_id == seller]
            for o in latest.values()
            if o.status in SOLD_STATUSES
        ]
        sold = [items for items in sold if items]
        open_orders = [
            o
            for o in latest.values()
            if o.status is OrderStatus.CONFIRMED and any(i.seller_id == seller for i in o.items)
        ]
        assert figures(dashboard) == (
            len(sold),
            sum(i.quantity for items in sold for i in items),
            sum(i.quantity * i.unit_price_cents for items in sold for i in items),
            len(open_orders),
        )
