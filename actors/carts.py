"""CartShard: carts by buyer id."""

from __future__ import annotations

from typing import Any

import ray

from actors.base import ActorBase
from marketplace.domain.cart import Cart
from marketplace.domain.catalog import Product
from marketplace.domain.orders import OrderLine
from marketplace.store import carts as store
from marketplace.store.writer import Writer


class CartShard(ActorBase):
    """Owns carts by ``stable_hash(buyer_id) % shards``."""

    SOURCE = "marketplace/carts"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        self.carts: dict[str, Cart] = {}
        super().__init__(settings, index, count, writer=writer)

    async def load(self) -> None:
        for cart in await store.load_owned(self.database, self.index, self.count):
            self.carts[cart.buyer_id] = cart

    async def get_cart(self, buyer_id: str) -> Cart:
        """The buyer's cart (empty if none)."""
        await self.loaded()
        return self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)

    async def set_item(
        self, buyer_id: str, product_id: str, quantity: int, product: Product | None
    ) -> Cart:
        """Set a product's quantity (0 removes it), priced from ``product``."""
        await self.loaded()
        async with self.locks.hold(buyer_id):
            cart = (self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)).with_quantity(
                product, product_id, quantity
            )
            return await self._save(cart)

    async def clear(self, buyer_id: str) -> Cart:
        """Empty the cart."""
        await self.loaded()
        async with self.locks.hold(buyer_id):
            cart = self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)
            emptied = cart.model_copy(update={"items": (), "version": cart.version + 1})
            return await self._save(emptied)

    async def remove_lines(self, buyer_id: str, lines: list[OrderLine]) -> Cart:
        """Take checked-out quantities out of the cart."""
        await self.loaded()
        async with self.locks.hold(buyer_id):
            cart = self.carts.get(buyer_id) or Cart(buyer_id=buyer_id)
            return await self._save(cart.without(tuple(lines)))

    async def _save(self, cart: Cart) -> Cart:
        await self.writer.write(store.saved(cart))
        self.carts[cart.buyer_id] = cart
        return cart


CartShardActor = ray.remote(CartShard)
