"""Domain events: what happened, in the past tense, with the aggregate they belong to."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class EventType(StrEnum):
    """The event types of DESIGN.md section 7 (also the RabbitMQ routing keys)."""

    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_DEACTIVATED = "product.deactivated"
    STOCK_CHANGED = "stock.changed"
    ORDER_PLACED = "order.placed"
    ORDER_CONFIRMED = "order.confirmed"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_VOIDED = "payment.voided"
    PAYMENT_REFUNDED = "payment.refunded"
    SHIPMENT_CREATED = "shipment.created"
    SHIPMENT_UPDATED = "shipment.updated"


class DomainEvent(BaseModel):
    """An event before it gets its envelope (id, source, time) in the outbox.

    ``subject`` is the aggregate id and ``sequence`` the aggregate's version after the change,
    so the events of one aggregate carry increasing sequence numbers (invariant I5).
    """

    model_config = ConfigDict(frozen=True)

    type: EventType
    subject: str
    sequence: int
    data: dict[str, Any]
