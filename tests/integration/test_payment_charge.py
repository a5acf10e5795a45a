"""The checkout's payment step: authorize and capture in one call to a real PaymentProcessor."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from actors.directory import PAYMENTS
from actors.protocols import PaymentProcessorApi
from marketplace.domain.errors import TransientFailure
from marketplace.domain.orders import FailureReason, OrderStatus
from marketplace.domain.payments import PaymentStatus
from marketplace.store.tables import ledger_entries, outbox
from tests.integration.market import build_market

pytestmark = pytest.mark.integration

ORDER = "ord_" + "c" * 32


async def _ledger_and_events(
    runtime: Any, order_id: str
) -> tuple[list[str], list[tuple[str, int]]]:
    payment_id = "pay_" + order_id[4:]
    async with runtime.client.engine.connect() as conn:
        ledger = (
            await conn.execute(
                select(ledger_entries.c.operation)
                .where(ledger_entries.c.order_id == order_id, ledger_entries.c.amount_cents > 0)
                .order_by(ledger_entries.c.id)
            )
        ).scalars()
        events = (
            await conn.execute(
                select(outbox.c.type, outbox.c.sequence)
                .where(outbox.c.subject == payment_id)
                .order_by(outbox.c.position)
            )
        ).all()
    return list(ledger), [tuple(row) for row in events]


async def test_a_charge_captures_once_and_records_both_steps(shared_marketplace: Any) -> None:
    runtime = shared_marketplace
    processor = runtime.client.directory.route(PAYMENTS, ORDER)
    payment = await processor.call(PaymentProcessorApi.charge, ORDER, 1250, "tok_visa")
    assert payment.status is PaymentStatus.CAPTURED and payment.captured_cents == 1250
    again = await processor.call(PaymentProcessorApi.charge, ORDER, 1250, "tok_visa")
    assert again == payment  # a retry is answered, not charged again
    ledger, events = await _ledger_and_events(runtime, ORDER)
    assert ledger.count("capture") == 1 and ledger.count("authorize") == 1
    assert events == [("payment.authorized", 1), ("payment.captured", 2)]


async def test_a_declined_charge_moves_nothing(shared_marketplace: Any) -> None:
    runtime = shared_marketplace
    order_id = "ord_" + "d" * 32
    processor = runtime.client.directory.route(PAYMENTS, order_id)
    payment = await processor.call(PaymentProcessorApi.charge, order_id, 900, "tok_declined")
    assert payment.status is PaymentStatus.DECLINED and payment.captured_cents == 0
    ledger, _ = await _ledger_and_events(runtime, order_id)
    assert ledger == []


async def test_a_transient_error_charges_nothing_until_a_retry(shared_marketplace: Any) -> None:
    runtime = shared_marketplace
    order_id = "ord_" + "e" * 32
    processor = runtime.client.directory.route(PAYMENTS, order_id)
    with pytest.raises(TransientFailure):
        await processor.call(PaymentProcessorApi.charge, order_id, 700, "tok_error")
    assert await processor.call(PaymentProcessorApi.get, order_id) is None
    payment = await processor.call(PaymentProcessorApi.charge, order_id, 700, "tok_error")
    assert payment.status is PaymentStatus.CAPTURED


async def test_a_charge_captures_an_authorization_left_uncaptured(shared_marketplace: Any) -> None:
    runtime = shared_marketplace
    order_id = "ord_" + "f" * 32
    processor = runtime.client.directory.route(PAYMENTS, order_id)
    held = await processor.call(PaymentProcessorApi.authorize, order_id, 300, "tok_visa")
    assert held.status is PaymentStatus.AUTHORIZED
    payment = await processor.call(PaymentProcessorApi.charge, order_id, 300, "tok_visa")
    assert payment.status is PaymentStatus.CAPTURED and payment.version == 2
    ledger, events = await _ledger_and_events(runtime, order_id)
    assert ledger.count("capture") == 1
    assert events == [("payment.authorized", 1), ("payment.captured", 2)]


async def test_cancelling_a_charge_before_it_arrives_leaves_a_void_it_cannot_get_past(
    shared_marketplace: Any,
) -> None:
    runtime = shared_marketplace
    order_id = "ord_" + "9" * 32
    processor = runtime.client.directory.route(PAYMENTS, order_id)
    tombstone = await processor.call(PaymentProcessorApi.cancel_charge, order_id)
    assert tombstone.status is PaymentStatus.VOIDED and tombstone.amount_cents == 0
    late = await processor.call(
        PaymentProcessorApi.charge, order_id, 500, "tok_visa"
    )  # a retry, arriving late
    assert late == tombstone
    ledger, events = await _ledger_and_events(runtime, order_id)
    assert ledger == []
    assert events == [("payment.voided", 1)]


async def test_a_charge_that_times_out_after_capturing_is_refunded(
    make_marketplace: Any,
) -> None:
    # The card network answers after the saga has stopped waiting: the order is cancelled as
    # payment_failed, and its compensation waits for the charge in flight, then refunds it.
    runtime = await make_marketplace(saga_step_timeout_s=2.0, payment_latency_ms=4000)
    client = runtime.client
    market = await build_market(client, stock=[5], buyers=1)
    order = await client.place_order(
        market.buyers[0].id,
        "slow-card",
        items=[{"product_id": market.products[0].id, "quantity": 1}],
    )
    assert order.status is OrderStatus.CANCELLED
    assert order.failure_reason == FailureReason.PAYMENT_FAILED
    payment = await client.get_payment(order.id)
    assert payment is not None and payment.status is PaymentStatus.REFUNDED
    assert payment.captured_cents == payment.refunded_cents == order.total_cents
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()
