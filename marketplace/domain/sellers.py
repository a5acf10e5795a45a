"""Seller dashboards, projected from order snapshots (invariant I6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from marketplace.domain.orders import SOLD_STATUSES, Order, OrderStatus


class SellerOrderFact(BaseModel):
    """What one order means to one seller at one order version."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    seller_id: str
    order_version: int
    status: OrderStatus
    items_sold: int
    revenue_cents: int

    @property
    def counts(self) -> bool:
        """Only sold orders (confirmed, shipped, delivered) count on a dashboard."""
        return self.status in SOLD_STATUSES


def facts_of(order: Order) -> list[SellerOrderFact]:
    """Split an order into one fact per seller."""
    return [
        SellerOrderFact(
            order_id=order.id,
            seller_id=seller_id,
            order_version=order.version,
            status=order.status,
            items_sold=sum(item.quantity for item in items),
            revenue_cents=sum(item.subtotal_cents for item in items),
        )
        for seller_id, items in order.items_by_seller().items()
    ]


class Dashboard(BaseModel):
    """A seller's figures: sold orders, items, revenue, and orders still to ship."""

    seller_id: str
    orders_count: int = 0
    items_sold: int = 0
    revenue_cents: int = 0
    open_orders: int = 0
    as_of: datetime | None = None
    as_of_version: int = 0

    def add(self, fact: SellerOrderFact, sign: int) -> None:
        """Count a fact in (sign +1) or out (sign -1)."""
        if not fact.counts:
            return
        self.orders_count += sign
        self.items_sold += sign * fact.items_sold
        self.revenue_cents += sign * fact.revenue_cents
        if fact.status is OrderStatus.CONFIRMED:
            self.open_orders += sign

    def public(self) -> dict[str, Any]:
        """The dashboard as clients see it (DESIGN.md section 6)."""
        return {
            "seller_id": self.seller_id,
            "orders_count": self.orders_count,
            "items_sold": self.items_sold,
            "revenue_cents": self.revenue_cents,
            "open_orders": self.open_orders,
            "as_of": self.as_of.isoformat() if self.as_of else None,
        }
