"""Payments, their double-entry ledger (invariant I2) and the simulated card network."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.errors import Conflict, InvalidInput
from marketplace.domain.ids import sibling_id
from marketplace.domain.payments import (
    Account,
    CardDecision,
    LedgerEntry,
    Payment,
    PaymentStatus,
    authorize,
    decide_card,
    declined,
)
from tests.unit.factories import hex_id

pytestmark = pytest.mark.unit

ORDER = hex_id("ord", 1)
PAYMENT = sibling_id(ORDER, "pay")

A, CAP, V, R, DEC = (
    PaymentStatus.AUTHORIZED,
    PaymentStatus.CAPTURED,
    PaymentStatus.VOIDED,
    PaymentStatus.REFUNDED,
    PaymentStatus.DECLINED,
)
# Which operation each status allows, written out independently of the code.
ALLOWED = {("capture", A): CAP, ("void", A): V, ("refund", CAP): R}


def balance(entries: list[LedgerEntry], account: Account) -> int:
    return sum(entry.amount_cents for entry in entries if entry.account is account)


def test_authorize_posts_a_balanced_hold() -> None:
    payment, entries = authorize(PAYMENT, ORDER, 1234)
    assert (payment.status, payment.amount_cents, payment.version) == (A, 1234, 1)
    assert (payment.captured_cents, payment.refunded_cents) == (0, 0)
    assert sum(e.amount_cents for e in entries) == 0
    assert balance(entries, Account.CARD_HOLDS) == 1234
    assert balance(entries, Account.CASH) == 0
    assert {e.operation for e in entries} == {"authorize"}
    assert {e.order_id for e in entries} == {ORDER}


def test_authorize_refuses_negative_amounts() -> None:
    with pytest.raises(InvalidInput) as info:
        authorize(PAYMENT, ORDER, -1)
    assert info.value.details["field"] == "amount_cents"


def test_capture_then_refund() -> None:
    payment, ledger = authorize(PAYMENT, ORDER, 500)
    captured, entries = payment.capture()
    ledger += entries
    assert (captured.status, captured.captured_cents, captured.version) == (CAP, 500, 2)
    assert sum(e.amount_cents for e in entries) == 0
    assert balance(ledger, Account.CASH) == 500
    assert balance(ledger, Account.CARD_HOLDS) == 0
    with pytest.raises(Conflict):
        captured.capture()
    with pytest.raises(Conflict):
        captured.void()
    refunded, entries = captured.refund()
    ledger += entries
    assert (refunded.status, refunded.refunded_cents, refunded.version) == (R, 500, 3)
    assert sum(e.amount_cents for e in entries) == 0
    assert balance(ledger, Account.CASH) == 0
    assert sum(e.amount_cents for e in ledger) == 0
    for operation in ("capture", "void", "refund"):
        with pytest.raises(Conflict):
            getattr(refunded, operation)()


def test_void_releases_the_hold() -> None:
    payment, ledger = authorize(PAYMENT, ORDER, 700)
    voided, entries = payment.void()
    ledger += entries
    assert voided.status is V
    assert balance(ledger, Account.CARD_HOLDS) == 0
    assert balance(ledger, Account.CASH) == 0
    for operation in ("capture", "void", "refund"):
        with pytest.raises(Conflict):
            getattr(voided, operation)()


def test_refund_only_after_capture() -> None:
    payment, _ = authorize(PAYMENT, ORDER, 300)
    with pytest.raises(Conflict):
        payment.refund()


def test_declined_moves_nothing() -> None:
    payment = declined(PAYMENT, ORDER, 900)
    assert payment.status is DEC
    assert (payment.captured_cents, payment.refunded_cents) == (0, 0)
    for operation in ("capture", "void", "refund"):
        with pytest.raises(Conflict):
            getattr(payment, operation)()


operations = st.lists(st.sampled_from(["capture", "void", "refund"]), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=10**9), operations),
        min_size=1,
        max_size=6,
    )
)
def test_ledger_over_random_operations(orders: list[tuple[bool, int, list[str]]]) -> None:
    """Whatever is tried, postings balance, capture happens once, cash = captured - refunded."""
    ledger: list[LedgerEntry] = []
    captured_total = refunded_total = 0
    for n, (approved, amount, attempts) in enumerate(orders):
        order_id = hex_id("ord", n)
        payment_id = sibling_id(order_id, "pay")
        payment: Payment
        if approved:
            payment, entries = authorize(payment_id, order_id, amount)
            assert sum(e.amount_cents for e in entries) == 0
            ledger += entries
        else:
            payment = declined(payment_id, order_id, amount)
        captures = 0
        model_status = payment.status
        for operation in attempts:
            before = payment
            target = ALLOWED.get((operation, model_status))
            if target is None:
                with pytest.raises(Conflict):
                    getattr(before, operation)()
                continue
            payment, entries = getattr(before, operation)()
            model_status = target
            assert payment.status is target
            assert payment.version == before.version + 1
            assert before.status is not target  # the old object is untouched
            assert sum(e.amount_cents for e in entries) == 0, operation
            assert {e.order_id for e in entries} == {order_id}
            ledger += entries
            captures += operation == "capture"
        assert captures <= 1
        assert payment.captured_cents == (amount if captures else 0)
        assert payment.refunded_cents == (amount if model_status is R else 0)
        assert 0 <= payment.refunded_cents <= payment.captured_cents <= payment.amount_cents
        captured_total += payment.captured_cents
        refunded_total += payment.refunded_cents
        # Per order: what the marketplace holds equals its net charge.
        entries_of_order = [e for e in ledger if e.order_id == order_id]
        assert balance(entries_of_order, Account.CASH) == (
            payment.captured_cents - payment.refunded_cents
        )
        assert balance(entries_of_order, Account.CARD_HOLDS) == (amount if model_status is A else 0)
    assert sum(e.amount_cents for e in ledger) == 0
    assert balance(ledger, Account.CASH) == captured_total - refunded_total
    assert balance(ledger, Account.CUSTOMER_FUNDS) == -(
        balance(ledger, Account.CASH) + balance(ledger, Account.CARD_HOLDS)
    )


# --- the simulated card network ---------------------------------------------------------------


def test_test_cards() -> None:
    for attempt in range(4):
        for rate in (0.0, 0.5, 1.0):
            assert decide_card("tok_declined", ORDER, attempt, rate) is CardDecision.DECLINE
            assert decide_card("tok_visa", ORDER, attempt, rate) is CardDecision.APPROVE
    assert decide_card("tok_error", ORDER, 0, 0.0) is CardDecision.TRANSIENT_ERROR
    assert decide_card("tok_error", ORDER, 0, 1.0) is CardDecision.TRANSIENT_ERROR
    for attempt in (1, 2, 5):
        assert decide_card("tok_error", ORDER, attempt, 0.0) is CardDecision.APPROVE
        assert decide_card("tok_error", ORDER, attempt, 1.0) is CardDecision.APPROVE


def order_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"ord_{rng.getrandbits(128):032x}" for _ in range(count)]


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.7])
def test_decline_rate_is_deterministic_and_roughly_right(rate: float) -> None:
    ids = order_ids(5000, seed=int(rate * 100))
    decisions = [decide_card("tok_other", order_id, 0, rate) for order_id in ids]
    again = [
        decide_card("tok_other", order_id, attempt, rate) for attempt, order_id in enumerate(ids)
    ]
    assert decisions == again, "a retry (any attempt) gets the same verdict for the same order"
    counts = Counter(decisions)
    assert set(counts) <= {CardDecision.APPROVE, CardDecision.DECLINE}
    assert abs(counts[CardDecision.DECLINE] / len(ids) - rate) <= 0.03


def test_decline_rate_extremes() -> None:
    ids = order_ids(500, seed=9)
    assert all(decide_card("tok_x", i, 0, 0.0) is CardDecision.APPROVE for i in ids)
    assert all(decide_card("tok_x", i, 0, 1.0) is CardDecision.DECLINE for i in ids)


def test_a_higher_rate_declines_a_superset() -> None:
    ids = order_ids(2000, seed=11)
    low = {i for i in ids if decide_card("tok_x", i, 0, 0.2) is CardDecision.DECLINE}
    high = {i for i in ids if decide_card("tok_x", i, 0, 0.4) is CardDecision.DECLINE}
    assert low < high
