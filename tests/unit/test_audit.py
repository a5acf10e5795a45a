"""The invariant audit names what breaks each invariant, and passes a world that keeps them.

Every integration and end-to-end test closes on ``audit().ok``; these tests make sure that a
clean verdict means something: each check fails on the row that breaks its invariant, and only
that check does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from marketplace.audit import AuditData, audit, live_matches_store, store_only
from marketplace.domain.inventory import Reservation, ReservationState, StockItem
from marketplace.domain.orders import OrderStatus
from marketplace.domain.payments import Account, LedgerEntry, authorize
from marketplace.domain.sellers import Dashboard, facts_of
from tests.unit.factories import T0, hex_id, make_item, make_order

pytestmark = pytest.mark.unit

PRODUCT = hex_id("prd", 1)


def world() -> AuditData:
    """One product stocked with 10, one confirmed order of 2 units at 100 each, charged once,
    on the seller's dashboard, with its events: every invariant holds."""
    order = make_order(items=(make_item(1, quantity=2),), status=OrderStatus.CONFIRMED, version=4)
    stock = StockItem(product_id=PRODUCT).adjust(10).reserve(2).commit(2)
    payment, held = authorize(hex_id("pay", 1), order.id, order.total_cents)
    payment, captured = payment.capture()
    data = AuditData(
        stock=[stock],
        reservations=[
            Reservation(
                order_id=order.id, product_id=PRODUCT, quantity=2, state=ReservationState.COMMITTED
            )
        ],
        orders=[order],
        payments=[payment],
        facts=[],
        dashboards=[],
        movements={PRODUCT: 10},
        ledger=[*held, *captured],
        order_events={(order.id, "order.placed"), (order.id, "order.confirmed")},
        taken_at=T0 + timedelta(seconds=60),
    )
    on_dashboards(data)
    return data


def on_dashboards(data: AuditData) -> None:
    """The seller view's facts and dashboards as of every order in ``data``."""
    data.facts = [fact for order in data.orders for fact in facts_of(order)]
    boards: dict[str, Dashboard] = {}
    for fact in data.facts:
        boards.setdefault(fact.seller_id, Dashboard(seller_id=fact.seller_id)).add(fact, +1)
    data.dashboards = list(boards.values())


def failing(data: AuditData, max_pending_age_s: float) -> dict[str, list[str]]:
    """The violations of each failing check."""
    report = audit(data, max_pending_age_s=max_pending_age_s)
    assert report.ok == all(check.ok for check in report.checks.values())
    return {name: check.violations for name, check in report.checks.items() if not check.ok}


def test_a_world_that_keeps_every_invariant_passes() -> None:
    data = world()
    report = audit(data, live=world(), max_pending_age_s=30)
    assert report.ok, report.summary()
    assert set(report.checks) == {
        "I1_no_oversell",
        "I2_exactly_once_charge",
        "I3_orders_settle",
        "I4_events_recorded",
        "I6_dashboards",
        "live_matches_store",
    }
    assert all(check.checked > 0 for check in report.checks.values())


def _oversold(data: AuditData) -> None:
    data.stock = [data.stock[0].model_copy(update={"sold": 3})]


def _sold_beyond_stock(data: AuditData) -> None:
    data.stock = [data.stock[0].model_copy(update={"sold": 11})]


def _unrecorded_restock(data: AuditData) -> None:
    data.movements = {PRODUCT: 7}


def _held_twice(data: AuditData) -> None:
    data.reservations.append(
        Reservation(
            order_id=hex_id("ord", 9), product_id=PRODUCT, quantity=1, state=ReservationState.HELD
        )
    )


def _captured_twice(data: AuditData) -> None:
    assert data.ledger is not None
    data.ledger += [e for e in data.ledger if e.operation == "capture"]


def _unbalanced_ledger(data: AuditData) -> None:
    assert data.ledger is not None
    data.ledger.append(
        LedgerEntry(
            order_id=data.orders[0].id, operation="capture", account=Account.CASH, amount_cents=1
        )
    )


def _cancelled_but_charged(data: AuditData) -> None:
    data.orders = [data.orders[0].model_copy(update={"status": OrderStatus.CANCELLED})]
    data.reservations = [
        r.model_copy(update={"state": ReservationState.RETURNED}) for r in data.reservations
    ]
    data.stock = [data.stock[0].unsell(2)]
    data.order_events = {(data.orders[0].id, "order.cancelled")}
    on_dashboards(data)


def _stuck_pending(data: AuditData) -> None:
    pending = make_order(n=2, status=OrderStatus.PENDING, updated_at=T0)
    data.orders.append(pending)
    data.order_events = (data.order_events or set()) | {(pending.id, "order.placed")}


def _cancelled_still_holding(data: AuditData) -> None:
    cancelled = make_order(n=3, status=OrderStatus.CANCELLED, items=(make_item(1),))
    data.orders.append(cancelled)
    data.reservations.append(
        Reservation(
            order_id=cancelled.id, product_id=PRODUCT, quantity=1, state=ReservationState.HELD
        )
    )
    data.stock = [data.stock[0].reserve(1)]
    data.order_events = (data.order_events or set()) | {(cancelled.id, "order.cancelled")}
    on_dashboards(data)


def _event_missing(data: AuditData) -> None:
    data.order_events = {(data.orders[0].id, "order.placed")}


def _dashboard_off(data: AuditData) -> None:
    data.dashboards = [data.dashboards[0].model_copy(update={"revenue_cents": 1})]


def _dashboard_missed_the_order(data: AuditData) -> None:
    data.facts = []
    data.dashboards = []


BREAKS: list[tuple[Callable[[AuditData], None], str, str]] = [
    (_oversold, "I1_no_oversell", "sold=3 but committed reservations=2"),
    (_sold_beyond_stock, "I1_no_oversell", "negative counter (available=-1"),
    (_unrecorded_restock, "I1_no_oversell", "movements sum to 7"),
    (_held_twice, "I1_no_oversell", "held reservations=1"),
    (_captured_twice, "I2_exactly_once_charge", "captured 2 times"),
    (_unbalanced_ledger, "I2_exactly_once_charge", "postings sum to 1"),
    (_cancelled_but_charged, "I2_exactly_once_charge", "(cancelled): still charged 200"),
    (_stuck_pending, "I3_orders_settle", "stuck pending"),
    (_cancelled_still_holding, "I3_orders_settle", "(cancelled): still holds"),
    (_event_missing, "I4_events_recorded", "no order.confirmed event"),
    (_dashboard_off, "I6_dashboards", "revenue_cents=1, orders say 200"),
    (_dashboard_missed_the_order, "I6_dashboards", "dashboard missed"),
]


@pytest.mark.parametrize(
    ("breaks", "check", "names"), BREAKS, ids=[b[0].__name__.strip("_") for b in BREAKS]
)
def test_each_check_names_what_breaks_its_invariant(
    breaks: Callable[[AuditData], None], check: str, names: str
) -> None:
    data = world()
    breaks(data)
    failed = failing(data, max_pending_age_s=30)
    assert set(failed) == {check}, failed
    assert any(names in violation for violation in failed[check]), failed[check]


def test_a_young_pending_order_is_in_flight_not_stuck() -> None:
    data = world()
    _stuck_pending(data)
    report = audit(data, max_pending_age_s=120)
    assert report.ok, report.summary()
    assert report.in_flight_orders == 1


def test_an_event_older_than_the_outbox_retention_may_be_pruned() -> None:
    # The order last changed at T0; its event is gone from the outbox.
    data = world()
    data.order_events = set()
    data.events_kept_since = T0 + timedelta(seconds=1)  # pruning may have taken it
    assert audit(data, max_pending_age_s=30).ok
    data.events_kept_since = T0  # inside the retention: it must be there
    assert set(failing(data, max_pending_age_s=30)) == {"I4_events_recorded"}


def test_memory_ahead_of_the_store_is_a_violation() -> None:
    stored, live = world(), world()
    live.stock = [live.stock[0].adjust(5)]
    result = live_matches_store(live, stored)
    assert not result.ok and "stock" in result.violations[0]
    # The other way round the store changed after the live snapshot: not a violation.
    assert live_matches_store(stored, live).ok


def test_a_row_no_actor_holds_is_a_violation_unless_a_later_look_finds_it() -> None:
    stored, live = world(), world()
    live.orders, live.payments = [], []
    assert store_only(live, stored) == {
        ("order", stored.orders[0].id),
        ("payment of", stored.orders[0].id),
    }
    result = live_matches_store(live, stored)
    assert not result.ok
    assert f"order {stored.orders[0].id}: in the store but in no actor's memory" in (
        result.violations
    )
    # Written between the live snapshot and the store read: the later look holds it.
    assert live_matches_store(live, stored, later=world()).ok
    still_missing = replace(world(), payments=[])
    result = live_matches_store(live, stored, later=still_missing)
    assert result.violations == [
        f"payment of {stored.orders[0].id}: in the store but in no actor's memory"
    ]
