"""Gather the live actors' in-memory state into an AuditData."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from actors.directory import INVENTORY, ORDERS, PAYMENTS, SELLERS, Directory
from actors.protocols import (
    InventoryPartitionApi,
    OrderCoordinatorApi,
    PaymentProcessorApi,
    SellerViewApi,
)
from marketplace.audit import AuditData


async def live_snapshot(directory: Directory, taken_at: datetime | None = None) -> AuditData:
    """What every inventory partition, coordinator, processor and the seller view hold now."""
    inventory, order_parts, payment_parts, sellers = await asyncio.gather(
        asyncio.gather(
            *(a.call(InventoryPartitionApi.snapshot) for a in directory.every(INVENTORY))
        ),
        asyncio.gather(*(a.call(OrderCoordinatorApi.snapshot) for a in directory.every(ORDERS))),
        asyncio.gather(*(a.call(PaymentProcessorApi.snapshot) for a in directory.every(PAYMENTS))),
        directory.every(SELLERS)[0].call(SellerViewApi.snapshot),
    )
    return AuditData(
        stock=[item for part in inventory for item in part["stock"].values()],
        reservations=[r for part in inventory for r in part["reservations"]],
        orders=[order for part in order_parts for order in part],
        payments=[p for part in payment_parts for p in part],
        facts=sellers["facts"],
        dashboards=list(sellers["dashboards"].values()),
        taken_at=taken_at or datetime.now(UTC),
    )
