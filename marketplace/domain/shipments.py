"""Shipments: one per confirmed order, one package per seller."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from marketplace.domain.errors import Conflict
from marketplace.domain.events import DomainEvent, EventType
from marketplace.domain.ids import sibling_id
from marketplace.domain.orders import Order


class ShipmentStatus(StrEnum):
    """pending -> shipped -> delivered; pending -> cancelled."""

    PENDING = "pending"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


_NEXT: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    ShipmentStatus.PENDING: frozenset({ShipmentStatus.SHIPPED, ShipmentStatus.CANCELLED}),
    ShipmentStatus.SHIPPED: frozenset({ShipmentStatus.DELIVERED}),
    ShipmentStatus.DELIVERED: frozenset(),
    ShipmentStatus.CANCELLED: frozenset(),
}


class Package(BaseModel):
    """The part of a shipment that one seller sends."""

    model_config = ConfigDict(frozen=True)

    seller_id: str
    items: tuple[dict[str, Any], ...]
    status: ShipmentStatus


class Shipment(BaseModel):
    """Delivery of one order."""

    model_config = ConfigDict(frozen=True)

    id: str
    order_id: str
    buyer_id: str
    status: ShipmentStatus
    packages: tuple[Package, ...]
    version: int = 1

    def moved_to(self, status: ShipmentStatus) -> Shipment:
        """The shipment (and all its packages) in the next status."""
        if status not in _NEXT[self.status]:
            raise Conflict(
                f"shipment {self.id} is {self.status.value}; it cannot become {status.value}",
                shipment_id=self.id,
                status=self.status.value,
            )
        packages = tuple(package.model_copy(update={"status": status}) for package in self.packages)
        return self.model_copy(
            update={"status": status, "packages": packages, "version": self.version + 1}
        )

    def moved(self, status: ShipmentStatus) -> tuple[Shipment, DomainEvent]:
        """``moved_to``, with its ``shipment.updated`` event."""
        moved = self.moved_to(status)
        return moved, shipment_event(moved, EventType.SHIPMENT_UPDATED)

    def public(self) -> dict[str, Any]:
        """The shipment as clients see it (DESIGN.md section 6)."""
        return {
            "id": self.id,
            "order_id": self.order_id,
            "status": self.status.value,
            "packages": [package.model_dump(mode="json") for package in self.packages],
        }


def shipment_for(order: Order) -> Shipment:
    """The shipment a confirmed order opens."""
    packages = tuple(
        Package(
            seller_id=seller_id,
            items=tuple(
                {"product_id": item.product_id, "quantity": item.quantity} for item in items
            ),
            status=ShipmentStatus.PENDING,
        )
        for seller_id, items in sorted(order.items_by_seller().items())
    )
    return Shipment(
        id=sibling_id(order.id, "shp"),
        order_id=order.id,
        buyer_id=order.buyer_id,
        status=ShipmentStatus.PENDING,
        packages=packages,
    )


def open_shipment(order: Order) -> tuple[Shipment, DomainEvent]:
    """``shipment_for``, with its ``shipment.created`` event."""
    shipment = shipment_for(order)
    return shipment, shipment_event(shipment, EventType.SHIPMENT_CREATED)


def shipment_event(shipment: Shipment, event_type: EventType) -> DomainEvent:
    """The event announcing ``shipment`` in its new state."""
    return DomainEvent(
        type=event_type,
        subject=shipment.id,
        sequence=shipment.version,
        data=shipment.model_dump(mode="json"),
    )
