"""Domain errors (HTTP mapping, pickling for Ray) and event types."""

from __future__ import annotations

import pickle

import pytest

from marketplace.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidInput,
    NotFound,
    TransientFailure,
)
from marketplace.domain.events import DomainEvent, EventType

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (DomainError, 400, "bad_request"),
        (InvalidInput, 422, "invalid_input"),
        (NotFound, 404, "not_found"),
        (Forbidden, 403, "forbidden"),
        (Conflict, 409, "conflict"),
        (InsufficientStock, 409, "insufficient_stock"),
        (IdempotencyKeyReused, 422, "idempotency_key_reused"),
        (TransientFailure, 503, "transient_failure"),
    ],
)
def test_errors_map_to_http_and_survive_pickling(
    cls: type[DomainError], status: int, code: str
) -> None:
    error = cls("it went wrong", field="x", available=3)
    assert (error.status, error.code, error.message, str(error)) == (
        status,
        code,
        "it went wrong",
        "it went wrong",
    )
    assert error.to_dict() == {
        "code": code,
        "status": status,
        "detail": "it went wrong",
        "field": "x",
        "available": 3,
    }
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert (again.message, again.details) == (error.message, error.details)


def test_insufficient_stock_is_a_conflict() -> None:
    assert issubclass(InsufficientStock, Conflict)


def test_event_types_cover_the_design() -> None:
    documented = {
        "product.created",
        "product.updated",
        "product.deactivated",
        "stock.changed",
        "order.placed",
        "order.confirmed",
        "order.cancelled",
        "payment.authorized",
        "payment.captured",
        "payment.refunded",
        "shipment.created",
        "shipment.updated",
    }
    assert documented <= {t.value for t in EventType}
    assert EventType("order.placed") is EventType.ORDER_PLACED


def test_domain_event_is_frozen() -> None:
    event = DomainEvent(type=EventType.STOCK_CHANGED, subject="stk_x", sequence=2, data={"a": 1})
    assert event.type == "stock.changed"
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        event.sequence = 3  # type: ignore[misc]
    assert event.sequence == 2
