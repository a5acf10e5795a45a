"""Load a synthetic market into a marketplace.

``await seed_market(client, market)`` registers the users and lists the products with their
initial stock through a ``MarketplaceClient`` (anything shaped like one), concurrently, and writes
a manifest JSON (default ``.marketplace/seed.json``) that ``load_manifest`` reads back. Seeding is
idempotent: users that exist are reused (matched by email) and product ids are derived from the
seed, so running it twice with the same arguments changes nothing the second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from marketplace.config import mask_url
from marketplace.domain.catalog import Product, ProductDraft
from marketplace.domain.errors import Conflict
from marketplace.domain.users import Principal, User
from marketplace.passwords import hash_password
from marketplace.sim.manifest import ManifestProduct, ManifestUser, SeedManifest, write_manifest
from marketplace.sim.market import SeedProduct, SeedUser, SyntheticMarket
from marketplace.store.users import UserStore

T = TypeVar("T")

ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase is "users" or "products"; done/total count both."""


class SeedClient(Protocol):
    """What ``seed_market`` needs of a ``MarketplaceClient``."""

    users: UserStore

    async def create_product(
        self,
        seller: Principal,
        draft: ProductDraft,
        initial_stock: int = 0,
        *,
        product_id: str | None = None,
    ) -> Product: ...


async def seed_market(
    client: SeedClient,
    market: SyntheticMarket,
    *,
    concurrency: int = 32,
    progress: ProgressCallback | None = None,
    manifest_path: str | Path | None = None,
    write: bool = True,
    namespace: str | None = None,
    database_url: str | None = None,
) -> SeedManifest:
    """Register ``market``'s users and list its products with their stock, ``concurrency``
    requests at a time (registrations no more than the user store's ``bulk_concurrency``);
    write the manifest (unless ``write`` is False) and return it.

    One argon2 hash of the shared password serves every seeded user. Users that exist already
    (same email and role) are reused; a product that exists already is left as it is.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    gate = asyncio.Semaphore(concurrency)
    total = len(market.sellers) + len(market.buyers) + len(market.products)
    done = 0

    def advance(phase: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(phase, done, total)

    if progress is not None:
        progress("users", 0, total)
    password_hash = await asyncio.to_thread(hash_password, market.password)

    # Registrations query this process's own engine (the products go through the actors):
    # more of them at once than its pool holds would queue in the pool, and on a loaded
    # machine time out there.
    user_gate = asyncio.Semaphore(min(concurrency, client.users.bulk_concurrency()))

    async def register(spec: SeedUser) -> User:
        async with user_gate:
            user = await _register_or_reuse(client.users, spec, market.password, password_hash)
        advance("users")
        return user

    users = await _all([register(spec) for spec in market.sellers + market.buyers])
    sellers, buyers = users[: len(market.sellers)], users[len(market.sellers) :]

    async def list_product(spec: SeedProduct) -> Product:
        seller = sellers[spec.seller_index]
        async with gate:
            product = await client.create_product(
                Principal(id=seller.id, role=seller.role),
                spec.draft(),
                spec.stock,
                product_id=spec.product_id,
            )
        advance("products")
        return product

    listed = await _all([list_product(spec) for spec in market.products])

    manifest = SeedManifest(
        seed=market.seed,
        zipf=market.zipf,
        seeded_at=datetime.now(UTC),
        namespace=namespace,
        database_url=mask_url(database_url) if database_url else None,
        password=market.password,
        sellers=_manifest_users(sellers),
        buyers=_manifest_users(buyers),
        products=[
            ManifestProduct(
                id=product.id,
                seller_id=product.seller_id,
                name=product.name,
                category=product.category,
                price_cents=product.price_cents,
                stock=spec.stock,
                weight=spec.weight,
            )
            for spec, product in zip(market.products, listed, strict=True)
        ],
        categories=market.categories,
    )
    if write:
        write_manifest(manifest, manifest_path)
    return manifest


async def _all(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run every coroutine; on the first failure cancel the rest and raise that failure."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


async def _register_or_reuse(
    users: UserStore, spec: SeedUser, password: str, password_hash: str
) -> User:
    # Look first: seeding again (the same seed) then reads instead of failing inserts. A run of
    # failing inserts from many connections of one process, beside the actors' writers, has
    # ended with one of this process's connections holding SQLite's write lock while the
    # others timed out waiting for it ("database is locked" after 60 s); see the stop note.
    existing = await users.by_email(spec.email)
    if existing is None:
        try:
            return await users.register(
                spec.email, password, spec.name, spec.role, password_hash=password_hash
            )
        except Conflict:
            existing = await users.by_email(spec.email)
            if existing is None:
                raise
    if existing.role is not spec.role:
        raise Conflict(
            f"{spec.email} exists as a {existing.role.value}, not a {spec.role.value}",
            field="email",
        ) from None
    return existing


def _manifest_users(users: Sequence[User]) -> list[ManifestUser]:
    return [
        ManifestUser(id=user.id, email=user.email, name=user.name, role=user.role) for user in users
    ]
