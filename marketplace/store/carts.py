"""Carts in the store: row mapping, the shard's load and its writes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.domain.cart import Cart, CartItem
from marketplace.domain.ids import stable_hash
from marketplace.store.changes import Changes
from marketplace.store.rows import owned
from marketplace.store.tables import carts


async def load_owned(engine: AsyncEngine, index: int, count: int) -> list[Cart]:
    """The carts shard ``index`` of ``count`` owns."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(carts).where(owned(carts, index, count)))
        return [
            Cart(
                buyer_id=row["buyer_id"],
                items=tuple(CartItem.model_validate(item) for item in row["items"]),
                version=row["version"],
            )
            for row in rows.mappings()
        ]


def saved(cart: Cart) -> Changes:
    """A cart's new contents."""
    row = {
        "buyer_id": cart.buyer_id,
        "route_key": stable_hash(cart.buyer_id),
        "items": [item.model_dump() for item in cart.items],
        "version": cart.version,
    }
    return Changes().upsert(carts, [row], ["buyer_id"])
