"""Products in the store: row mapping, the shard's load and its writes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.domain.catalog import Product
from marketplace.domain.events import DomainEvent
from marketplace.domain.ids import stable_hash
from marketplace.store.changes import Changes
from marketplace.store.rows import owned, utcnow
from marketplace.store.tables import product_keys, products


async def load_owned(
    engine: AsyncEngine, index: int, count: int
) -> tuple[list[Product], dict[str, str]]:
    """The products shard ``index`` of ``count`` owns, and by product id the fingerprint of
    the listing request whose Idempotency-Key made it."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(products).where(owned(products, index, count)))
        loaded = [Product.model_validate(dict(row)) for row in rows.mappings()]
        keys = await conn.execute(
            select(product_keys.c.product_id, product_keys.c.fingerprint).where(
                owned(product_keys, index, count)
            )
        )
        fingerprints = {product_id: digest for product_id, digest in keys}
    return loaded, fingerprints


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
