"""Inbound messages (DESIGN.md section 7): what outside systems may send, and their validation.

Routing key ``stock.replenished`` {product_id, delta} and ``shipment.delivered``
{shipment_id}, JSON, with a unique ``message_id`` property. Anything else is rejected with a
reason, and the consumer dead-letters it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from marketplace.domain.ids import is_id

STOCK_REPLENISHED = "stock.replenished"
SHIPMENT_DELIVERED = "shipment.delivered"
MAX_MESSAGE_ID = 200  # the inbox column
# Units one inbound message may add: a delivery, not a sender's whim (an HTTP restock by the
# product's seller or an admin may add up to marketplace.domain.inventory.MAX_STOCK_DELTA).
MAX_DELTA = 100_000
MAX_REQUEST_ID = 80  # the stock_movements column


class Rejected(Exception):
    """A message that can never take effect (dead-lettered with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _id_of(prefix: str) -> AfterValidator:
    def check(value: str) -> str:
        if not is_id(value, prefix):
            raise ValueError(f"not a {prefix}_ id")
        return value

    return AfterValidator(check)


class StockReplenished(BaseModel):
    """Units arrived for a product: its stock goes up by ``delta``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    product_id: Annotated[str, _id_of("prd")]
    delta: Annotated[StrictInt, Field(gt=0, le=MAX_DELTA)]


class ShipmentDelivered(BaseModel):
    """A carrier delivered a shipment."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    shipment_id: Annotated[str, _id_of("shp")]


Command = StockReplenished | ShipmentDelivered
COMMANDS: dict[str, type[StockReplenished] | type[ShipmentDelivered]] = {
    STOCK_REPLENISHED: StockReplenished,
    SHIPMENT_DELIVERED: ShipmentDelivered,
}


@dataclass(frozen=True)
class InboundMessage:
    """A valid inbound message. ``message_id`` is what deduplicates it: the sender's
    ``message_id`` within the sender's id space (``scoped_id``)."""

    message_id: str
    routing_key: str
    command: Command


def scoped_id(message_id: str, source: str | None) -> str:
    """The id a message is deduplicated by: ``<source>/<message_id>`` for a sender that names
    itself with the AMQP ``user_id`` property (which RabbitMQ checks against the connection's
    user, so nobody else can claim it), the bare ``message_id`` for the rest, who share one
    id space."""
    return f"{source}/{message_id}" if source else message_id


def parse(
    message_id: str | None, routing_key: str, body: bytes, source: str | None = None
) -> InboundMessage:
    """Validate a delivery from ``source`` (its validated ``user_id``, if it gave one); raises
    ``Rejected`` saying why it can never take effect."""
    if not message_id:
        raise Rejected("missing message_id")
    message_id = scoped_id(message_id, source)
    if len(message_id) > MAX_MESSAGE_ID:
        raise Rejected(f"message_id (with its sender) longer than {MAX_MESSAGE_ID} characters")
    model = COMMANDS.get(routing_key)
    if model is None:
        raise Rejected(f"unknown routing key {routing_key!r}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Rejected("the payload must be a JSON object")
    try:
        command = model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
            for error in exc.errors()
        )
        raise Rejected(f"invalid {routing_key}: {problems}") from None
    return InboundMessage(message_id=message_id, routing_key=routing_key, command=command)


def request_id_for(message_id: str) -> str:
    """The stock movement's request id of an inbound message: ``inbound:<message_id>``, or
    ``inbound:<sha256 of it>`` when that would not fit the column."""
    request_id = f"inbound:{message_id}"
    if len(request_id) <= MAX_REQUEST_ID:
        return request_id
    return "inbound:" + hashlib.sha256(message_id.encode()).hexdigest()
