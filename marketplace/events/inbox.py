"""The ``inbox`` table: inbound message ids already applied (effects once per message id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.store.pruning import delete_before
from marketplace.store.rows import insert_ignore, utcnow
from marketplace.store.tables import inbox


async def seen(engine: AsyncEngine, message_id: str) -> bool:
    """Whether a message with this id was already applied."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(inbox.c.message_id).where(inbox.c.message_id == message_id)
        )
    return found is not None


async def record(engine: AsyncEngine, message_id: str, routing_key: str) -> bool:
    """Remember a message as applied; False when it already was."""
    row = {"message_id": message_id, "routing_key": routing_key, "processed_at": utcnow()}
    async with engine.begin() as conn:
        return await insert_ignore(conn, inbox, row, ["message_id"])


async def prune(engine: AsyncEngine, processed_before: datetime, batch: int = 1000) -> int:
    """Forget the message ids applied before ``processed_before``, ``batch`` per transaction;
    how many went. A message redelivered after that would take effect again, so the inbox's
    retention must outlast any redelivery (the broker's and the senders' retries)."""
    return await delete_before(
        engine, inbox, inbox.c.message_id, inbox.c.processed_at, processed_before, batch
    )
