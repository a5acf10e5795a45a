"""The relay's statements over the ``outbox`` table (the rows are written by the actors, in the
same transaction as the state change they describe: invariant I4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace.store.pruning import delete_before
from marketplace.store.rows import utcnow
from marketplace.store.tables import outbox

MARK_CHUNK = 500


async def fetch_unpublished(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The oldest ``limit`` unpublished rows, by position (commit order per aggregate)."""
    rows = await conn.execute(
        select(outbox)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.position)
        .limit(limit)
    )
    return [dict(row) for row in rows.mappings()]


async def mark_published(
    engine: AsyncEngine, event_ids: Sequence[str], at: datetime | None = None
) -> None:
    """Record that these events were confirmed by the broker."""
    if not event_ids:
        return
    at = at or utcnow()
    async with engine.begin() as conn:
        for start in range(0, len(event_ids), MARK_CHUNK):
            chunk = list(event_ids[start : start + MARK_CHUNK])
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(chunk), outbox.c.published_at.is_(None))
                .values(published_at=at)
            )


async def lag(engine: AsyncEngine) -> int:
    """How many events wait to be published."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    return int(count or 0)


async def prune_published(
    engine: AsyncEngine, published_before: datetime, batch: int = 1000
) -> int:
    """Delete the rows published before ``published_before``, oldest first, ``batch`` per
    transaction (short ones: actors' writes wait for SQLite's one write lock); how many went.

    An unpublished row (``published_at`` NULL) never matches: pruning cannot lose an event.
    """
    return await delete_before(
        engine, outbox, outbox.c.position, outbox.c.published_at, published_before, batch
    )
