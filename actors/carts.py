"""CartShard: carts by buyer id."""

from __future__ import annotations

from typing import Any

import ray
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from actors.base import ActorBase
from marketplace.domain.cart import Cart, CartItem
from marketplace.domain.catalog import Product
from marketplace.domain.ids import stable_hash
from marketplace.domain.orders import OrderLine
from marketplace.store.changes import Changes
from marketplace.store.tables import carts


class CartShard(ActorBase):
    """Owns carts by ``stable_hash(buyer_id) % shards``."""

    SOURCE = "marketplace/carts"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.carts: dict[str, Cart] = {}
        super().__init__(settings, index, count)

    async def load(self, conn: AsyncConnection) -> None:
        rows = await conn.execute(select(carts).where(self.owned(carts)))
        for row in rows.mappings():
            items = tuple(CartItem.model_validate(item) for item in row["items"])
            self.carts[row["buyer_id"]] = Cart(
                buyer_id=row["buyer_id"], items=items, version=row["version"]
            )

    async def get_cart(self, buyer_id: str) -> Cart:
        """The buyer's cart (empty if none)."""
        await self.ready()
        return self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)

    async def set_item(
        self, buyer_id: str, product_id: str, quantity: int, product: Product | None
    ) -> Cart:
        """Set a product's quantity (0 removes it), priced from ``product``."""
        await self.ready()
        async with self.locks.hold(buyer_id):
            cart = (self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)).with_quantity(
                product, product_id, quantity
            )
            return await self._save(cart)

    async def clear(self, buyer_id: str) -> Cart:
        """Empty the cart."""
        await self.ready()
        async with self.locks.hold(buyer_id):
            cart = self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)
            emptied = cart.model_copy(update={"items": (), "version": cart.version + 1})
            return await self._save(emptied)

    async def remove_lines(self, buyer_id: str, lines: list[OrderLine]) -> Cart:
        """Take checked-out quantities out of the cart."""
        await self.ready()
        async with self.locks.hold(buyer_id):
            cart = self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)
            return await self._save(cart.without(tuple(lines)))

    async def _save(self, cart: Cart) -> Cart:
        row = {
            "buyer_id": cart.buyer_id,
            "route_key": stable_hash(cart.buyer_id),
            "items": [item.model_dump() for item in cart.items],
            "version": cart.version,
        }

        await self.writer.write(Changes().upsert(carts, [row], ["buyer_id"]))
        self.carts[cart.buyer_id] = cart
        return cart


CartShardActor = ray.remote(CartShard)
