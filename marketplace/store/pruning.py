"""Deleting old rows in short transactions: what retention (outbox, inbox) is made of."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine


async def delete_before(
    engine: AsyncEngine,
    table: Table,
    key: Column[object],
    stamp: Column[datetime],
    before: datetime,
    batch: int = 1000,
) -> int:
    """Delete the rows of ``table`` whose ``stamp`` is before ``before``, oldest first,
    ``batch`` rows (by their unique ``key``) per transaction; returns how many went.

    Short transactions, because every actor's writes wait for SQLite's one write lock; a NULL
    ``stamp`` never matches (an unpublished outbox row, say, is never deleted).
    """
    total = 0
    while True:
        async with engine.begin() as conn:
            doomed = (
                select(key).where(stamp < before).order_by(stamp).limit(batch).scalar_subquery()
            )
            deleted = (await conn.execute(delete(table).where(key.in_(doomed)))).rowcount
        total += deleted
        if deleted < batch:
            return total
