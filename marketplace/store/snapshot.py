"""Read the whole store into an AuditData (for the audit and for tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.audit import AuditData
from marketplace.domain.inventory import Reservation, StockItem
from marketplace.domain.orders import Order, OrderItem, OrderStatus, ShippingAddress
from marketplace.domain.payments import Account, LedgerEntry, Payment
from marketplace.domain.sellers import SellerOrderFact
from marketplace.store.tables import (
    ledger_entries,
    orders,
    outbox,
    payments,
    reservations,
    seller_order_facts,
    stock_items,
    stock_movements,
)


async def load_audit_data(engine: AsyncEngine, taken_at: datetime | None = None) -> AuditData:
    """Everything in the store, read in one transaction."""
    async with engine.connect() as conn:
        stock = [
            StockItem.model_validate(dict(r))
            for r in (await conn.execute(select(stock_items))).mappings()
        ]
        held = [
            Reservation.model_validate(dict(r))
            for r in (await conn.execute(select(reservations))).mappings()
        ]
        order_rows = (await conn.execute(select(orders))).mappings().all()
        pays = [
            Payment.model_validate(dict(r))
            for r in (await conn.execute(select(payments))).mappings()
        ]
        ledger = [
            LedgerEntry(
                order_id=r["order_id"],
                operation=r["operation"],
                account=Account(r["account"]),
                amount_cents=r["amount_cents"],
            )
            for r in (await conn.execute(select(ledger_entries))).mappings()
        ]
        facts = [
            SellerOrderFact(
                order_id=r["order_id"],
                seller_id=r["seller_id"],
                order_version=r["order_version"],
                status=OrderStatus(r["status"]),
                items_sold=r["items_sold"],
                revenue_cents=r["revenue_cents"],
            )
            for r in (await conn.execute(select(seller_order_facts))).mappings()
        ]
        movements = {
            pid: int(total)
            for pid, total in await conn.execute(
                select(stock_movements.c.product_id, func.sum(stock_movements.c.delta)).group_by(
                    stock_movements.c.product_id
                )
            )
        }
        events = {
            (subject, type_)
            for subject, type_ in await conn.execute(
                select(outbox.c.subject, outbox.c.type).where(outbox.c.type.like("order.%"))
            )
        }
    order_list = [
        Order(
            id=r["id"],
            buyer_id=r["buyer_id"],
            status=OrderStatus(r["status"]),
            failure_reason=r["failure_reason"],
            items=tuple(OrderItem.model_validate(i) for i in r["items"]),
            total_cents=r["total_cents"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            version=r["version"],
            card_token=r["card_token"],
            shipping_address=ShippingAddress.model_validate(r["shipping_address"]),
        )
        for r in order_rows
    ]
    return AuditData(
        stock=stock,
        reservations=held,
        orders=order_list,
        payments=pays,
        facts=facts,
        dashboards=[],
        movements=movements,
        ledger=ledger,
        order_events=events,
        taken_at=taken_at or datetime.now(UTC),
    )
