"""Helpers to build small markets for integration tests."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from actors.client import MarketplaceClient
from actors.directory import INVENTORY
from marketplace.domain.catalog import Product, ProductDraft
from marketplace.domain.ids import owner_index
from marketplace.domain.users import Principal, Role, User
from marketplace.passwords import hash_password

_SHARED_HASH = hash_password("password123")


async def register(client: MarketplaceClient, role: Role, count: int = 1) -> list[User]:
    """Users with one shared password hash (argon2 is deliberately slow)."""
    return list(
        await asyncio.gather(
            *(
                client.users.register(
                    f"{role.value}-{uuid.uuid4().hex[:10]}@example.com",
                    "password123",
                    f"{role.value} {i}",
                    role,
                    password_hash=_SHARED_HASH,
                )
                for i in range(count)
            )
        )
    )


def principal(user: User) -> Principal:
    """The principal of a user."""
    return Principal(id=user.id, role=user.role)


@dataclass
class Market:
    """A seller, products spread over every inventory partition, and some buyers."""

    seller: User
    products: list[Product]
    buyers: list[User]


async def build_market(
    client: MarketplaceClient, *, stock: list[int], buyers: int = 10, price_cents: int = 1500
) -> Market:
    """One product per entry of ``stock``, placed so that consecutive products live on
    different inventory partitions (round-robin over partitions)."""
    (seller,) = await register(client, Role.SELLER)
    partitions = client.directory.count(INVENTORY)
    products: list[Product] = []
    for i, units in enumerate(stock):
        wanted = i % partitions
        product_id = _id_on_partition(wanted, partitions)
        draft = ProductDraft(
            name=f"Widget {i}",
            description="a test widget",
            category="widgets",
            price_cents=price_cents + i,
        )
        products.append(
            await client.create_product(principal(seller), draft, units, product_id=product_id)
        )
    return Market(
        seller=seller, products=products, buyers=await register(client, Role.BUYER, buyers)
    )


def _id_on_partition(index: int, count: int) -> str:
    while True:
        candidate = "prd_" + uuid.uuid4().hex
        if owner_index(candidate, count) == index:
            return candidate
