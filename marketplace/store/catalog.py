"""Products in the store: row mapping, the shard's load and its writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.domain.catalog import Product
from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import stable_hash
from marketplace.store.changes import Changes
from marketplace.store.failures import unavailable_on_outage
from marketplace.store.pruning import delete_before
from marketplace.store.rows import insert_ignore, owned, utcnow
from marketplace.store.tables import product_keys, product_write_keys, products
from marketplace.store.writer import Work


@dataclass(frozen=True)
class WriteKeyUse:
    """What a caller's Idempotency-Key for a product write stands for while it is inside its
    window: the product written, the request's fingerprint, the product as that write left it
    and when the key was first used."""

    product_id: str
    fingerprint: str
    product: Product
    created_at: datetime


class WriteKeyTaken(Exception):
    """The store already holds a write under this key (inside its window): ``use`` is it, and
    ``current`` the stored product the refused write was for (None if it has no row)."""

    def __init__(self, use: WriteKeyUse, current: Product | None) -> None:
        super().__init__(use.product_id)
        self.use = use
        self.current = current


def _write_key_use(row: Any) -> WriteKeyUse:
    return WriteKeyUse(
        row["product_id"],
        row["fingerprint"],
        Product.model_validate(row["product"]),
        row["created_at"],
    )


async def load_owned(
    engine: AsyncEngine, index: int, count: int, *, with_listing_keys: bool = True
) -> tuple[list[Product], dict[str, str]]:
    """The products shard ``index`` of ``count`` owns, and by product id the fingerprint of
    the listing request whose Idempotency-Key made it (none without ``with_listing_keys``:
    ``listing_fingerprint`` reads one when asked)."""
    fingerprints: dict[str, str] = {}
    async with engine.connect() as conn:
        rows = await conn.execute(select(products).where(owned(products, index, count)))
        loaded = [Product.model_validate(dict(row)) for row in rows.mappings()]
        if with_listing_keys:
            keys = await conn.execute(
                select(product_keys.c.product_id, product_keys.c.fingerprint).where(
                    owned(product_keys, index, count)
                )
            )
            fingerprints = {product_id: digest for product_id, digest in keys}
    return loaded, fingerprints


async def listing_fingerprint(engine: AsyncEngine, product_id: str) -> str | None:
    """The fingerprint of the listing request whose Idempotency-Key made ``product_id`` (None:
    it was listed without one); a database outage is a 503."""
    query = select(product_keys.c.fingerprint).where(product_keys.c.product_id == product_id)
    with unavailable_on_outage("the catalog store"):
        async with engine.connect() as conn:
            digest = (await conn.execute(query)).scalar_one_or_none()
    return None if digest is None else str(digest)


async def load_write_keys(
    engine: AsyncEngine, index: int, count: int, keys_since: datetime
) -> dict[str, WriteKeyUse]:
    """The product write keys used since ``keys_since`` (the start of their window) for the
    products shard ``index`` of ``count`` owns, by write id (``product_write_id_for``)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(product_write_keys).where(
                owned(product_write_keys, index, count),
                product_write_keys.c.created_at >= keys_since,
            )
        )
        return {row["id"]: _write_key_use(row) for row in rows.mappings()}


def keyed_write(
    write_id: str,
    caller_id: str,
    key: str,
    use: WriteKeyUse,
    changes: Changes | None,
    expired_before: datetime,
) -> Work:
    """A writer's work that records the caller's Idempotency-Key for a product write once,
    with ``changes`` (the product's new state and event; None when the write changed nothing)
    in the same transaction; raises ``WriteKeyTaken`` when the key already stands for a write
    inside its window (made on another shard, or by an attempt whose answer was lost). A row
    for the key from before ``expired_before`` is outside its window and gives way."""
    row = {
        "id": write_id,
        "route_key": stable_hash(use.product_id),
        "caller_id": caller_id,
        "key": key,
        "product_id": use.product_id,
        "fingerprint": use.fingerprint,
        "product": use.product.model_dump(),
        "created_at": use.created_at,
    }

    async def work(conn: AsyncConnection) -> None:
        await conn.execute(
            delete(product_write_keys).where(
                product_write_keys.c.id == write_id,
                product_write_keys.c.created_at < expired_before,
            )
        )
        if not await insert_ignore(conn, product_write_keys, row, ["id"]):
            stored = await conn.execute(
                select(product_write_keys).where(product_write_keys.c.id == write_id)
            )
            current = await _product_row(conn, use.product_id)
            raise WriteKeyTaken(_write_key_use(stored.mappings().one()), current)
        if changes:
            await changes.apply(conn)

    return work


async def _product_row(conn: AsyncConnection, product_id: str) -> Product | None:
    rows = await conn.execute(select(products).where(products.c.id == product_id))
    row = rows.mappings().first()
    return None if row is None else Product.model_validate(dict(row))


async def prune_write_keys(engine: AsyncEngine, expired_before: datetime) -> int:
    """Delete the product write keys used before ``expired_before``; how many went."""
    return await delete_before(
        engine,
        product_write_keys,
        product_write_keys.c.id,
        product_write_keys.c.created_at,
        expired_before,
    )


def listed(product: Product, key: str, fingerprint: str) -> Changes:
    """The Idempotency-Key (and request fingerprint) a new product was listed with."""
    row = {
        "product_id": product.id,
        "route_key": stable_hash(product.id),
        "seller_id": product.seller_id,
        "key": key,
        "fingerprint": fingerprint,
        "created_at": utcnow(),
    }
    return Changes().insert(product_keys, [row])


def saved(
    product: Product, source: str, events: Iterable[DomainEvent], changes: Changes | None = None
) -> Changes:
    """``changes`` (if any) plus a product's new state and its events."""
    row = {**product.model_dump(), "route_key": stable_hash(product.id)}
    return (changes or Changes()).upsert(products, [row], ["id"]).events(source, events)
