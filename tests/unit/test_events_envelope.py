"""The event envelope and its wire form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from marketplace.domain.events import DomainEvent, EventType
from marketplace.events.envelope import Envelope
from marketplace.events.publisher import to_message
from marketplace.store.rows import envelope as outbox_row

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _row(**changes: object) -> dict[str, object]:
    event = DomainEvent(
        type=EventType.ORDER_PLACED, subject="ord_" + "1" * 32, sequence=1, data={"total": 5}
    )
    row: dict[str, object] = {**outbox_row("marketplace/orders", event, T0), "position": 7}
    row["published_at"] = None
    row.update(changes)
    return row


def test_an_outbox_row_becomes_the_contract_envelope() -> None:
    row = _row()
    envelope = Envelope.from_row(row)
    assert envelope.id == row["id"] and str(envelope.id).startswith("evt_")
    assert envelope.type == "order.placed"
    assert envelope.subject == "ord_" + "1" * 32 and envelope.sequence == 1
    assert envelope.data == {"total": 5}
    body = orjson.loads(envelope.to_json())
    assert set(body) == {"id", "type", "source", "subject", "sequence", "time", "data"}
    assert body["time"] == "2024-05-06T07:08:09.123456Z"


def test_a_naive_time_is_no_valid_envelope() -> None:
    # The outbox reads times back aware (store.types.UtcDateTime); a naive one would be sent
    # as if it were local time.
    with pytest.raises(ValidationError):
        Envelope.from_row(_row(time=T0.replace(tzinfo=None)))


def test_other_time_zones_are_written_as_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    assert orjson.loads(Envelope.from_row(_row(time=local)).to_json())["time"].endswith("9.123456Z")


def test_the_wire_form_round_trips() -> None:
    envelope = Envelope.from_row(_row(data={"nested": {"list": [1, "two", None]}}))
    assert Envelope.from_json(envelope.to_json()) == envelope


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"id": "evt_1"}', orjson.dumps({**_row(), "time": "yesterday"}, default=str)],
)
def test_bad_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        Envelope.from_json(body)


def test_a_negative_sequence_is_refused() -> None:
    with pytest.raises(ValidationError):
        Envelope.from_row(_row(sequence=-1))


def test_the_amqp_message_carries_id_type_and_persistence() -> None:
    envelope = Envelope.from_row(_row())
    message = to_message(envelope)
    assert message.message_id == envelope.id
    assert message.type == "order.placed"
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2
    assert message.body == envelope.to_json()
    assert message.headers == {"subject": envelope.subject, "sequence": 1}
