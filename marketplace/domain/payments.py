"""Payments with a double-entry ledger, and the simulated card network."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from marketplace.domain.errors import Conflict, InvalidInput
from marketplace.domain.events import DomainEvent, EventType
from marketplace.domain.ids import stable_hash


class PaymentStatus(StrEnum):
    """authorized -> captured -> refunded; authorized -> voided; or declined at once."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    DECLINED = "declined"


class Account(StrEnum):
    """Ledger accounts. Every operation posts entries that sum to zero."""

    CARD_HOLDS = "card_holds"  # money promised by the card issuer but not moved
    CUSTOMER_FUNDS = "customer_funds"  # the buyer's side of every movement
    CASH = "cash"  # money the marketplace actually received


class LedgerEntry(BaseModel):
    """One leg of a balanced posting."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    operation: str
    account: Account
    amount_cents: int


class Payment(BaseModel):
    """One order's payment; all operations are idempotent by order id."""

    model_config = ConfigDict(frozen=True)

    id: str
    order_id: str
    status: PaymentStatus
    amount_cents: int
    captured_cents: int = 0
    refunded_cents: int = 0
    version: int = 1

    def capture(self) -> tuple[Payment, list[LedgerEntry]]:
        """Move the held amount; at most once per order (invariant I2)."""
        if self.status is not PaymentStatus.AUTHORIZED:
            raise Conflict(f"payment of {self.order_id} is {self.status.value}; cannot capture")
        return self._next(PaymentStatus.CAPTURED, captured_cents=self.amount_cents), [
            *_posting(
                self.order_id,
                "release_hold",
                Account.CUSTOMER_FUNDS,
                Account.CARD_HOLDS,
                self.amount_cents,
            ),
            *_posting(
                self.order_id, "capture", Account.CASH, Account.CUSTOMER_FUNDS, self.amount_cents
            ),
        ]

    def void(self) -> tuple[Payment, list[LedgerEntry]]:
        """Drop an authorization that was never captured."""
        if self.status is not PaymentStatus.AUTHORIZED:
            raise Conflict(f"payment of {self.order_id} is {self.status.value}; cannot void")
        return self._next(PaymentStatus.VOIDED), _posting(
            self.order_id, "void", Account.CUSTOMER_FUNDS, Account.CARD_HOLDS, self.amount_cents
        )

    def refund(self) -> tuple[Payment, list[LedgerEntry]]:
        """Give a captured amount back in full."""
        if self.status is not PaymentStatus.CAPTURED:
            raise Conflict(f"payment of {self.order_id} is {self.status.value}; cannot refund")
        amount = self.captured_cents - self.refunded_cents
        return self._next(PaymentStatus.REFUNDED, refunded_cents=self.captured_cents), _posting(
            self.order_id, "refund", Account.CUSTOMER_FUNDS, Account.CASH, amount
        )

    def _next(self, status: PaymentStatus, **changes: int) -> Payment:
        return self.model_copy(update={"status": status, "version": self.version + 1, **changes})


def authorize(
    payment_id: str, order_id: str, amount_cents: int
) -> tuple[Payment, list[LedgerEntry]]:
    """A fresh authorization and its hold posting."""
    if amount_cents < 0:
        raise InvalidInput("amount must not be negative", field="amount_cents")
    payment = Payment(
        id=payment_id, order_id=order_id, status=PaymentStatus.AUTHORIZED, amount_cents=amount_cents
    )
    return payment, _posting(
        order_id, "authorize", Account.CARD_HOLDS, Account.CUSTOMER_FUNDS, amount_cents
    )


def declined(payment_id: str, order_id: str, amount_cents: int) -> Payment:
    """A payment the card network refused; it moves nothing."""
    return Payment(
        id=payment_id, order_id=order_id, status=PaymentStatus.DECLINED, amount_cents=amount_cents
    )


_EVENT_OF_STATUS = {
    PaymentStatus.AUTHORIZED: EventType.PAYMENT_AUTHORIZED,
    PaymentStatus.CAPTURED: EventType.PAYMENT_CAPTURED,
    PaymentStatus.VOIDED: EventType.PAYMENT_VOIDED,
    PaymentStatus.REFUNDED: EventType.PAYMENT_REFUNDED,
}


def payment_events(states: Iterable[Payment]) -> list[DomainEvent]:
    """One event per state a payment passed through (a decline announces nothing)."""
    return [
        DomainEvent(
            type=_EVENT_OF_STATUS[state.status],
            subject=state.id,
            sequence=state.version,
            data=state.model_dump(),
        )
        for state in states
        if state.status in _EVENT_OF_STATUS
    ]


def _posting(
    order_id: str, operation: str, debit: Account, credit: Account, amount_cents: int
) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            order_id=order_id, operation=operation, account=debit, amount_cents=amount_cents
        ),
        LedgerEntry(
            order_id=order_id, operation=operation, account=credit, amount_cents=-amount_cents
        ),
    ]


class CardDecision(StrEnum):
    """What the simulated card network says to an authorization attempt."""

    APPROVE = "approve"
    DECLINE = "decline"
    TRANSIENT_ERROR = "transient_error"


TEST_CARDS = {"tok_visa", "tok_declined", "tok_error"}


def decide_card(card_token: str, order_id: str, attempt: int, decline_rate: float) -> CardDecision:
    """The simulated network's verdict, deterministic per order so retries agree.

    ``tok_declined`` always declines, ``tok_error`` fails its first attempt and then approves,
    and any other token approves unless the order falls in the configured decline rate.
    """
    if card_token == "tok_declined":
        return CardDecision.DECLINE
    if card_token == "tok_error" and attempt == 0:
        return CardDecision.TRANSIENT_ERROR
    in_decline_rate = stable_hash(order_id) % 10_000 < decline_rate * 10_000
    if card_token not in TEST_CARDS and in_decline_rate:
        return CardDecision.DECLINE
    return CardDecision.APPROVE
