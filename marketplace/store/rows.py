"""Small statements shared by every writer: dialect-neutral upserts and the outbox append."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplace.domain.events import DomainEvent
from marketplace.store.tables import outbox


def utcnow() -> datetime:
    """Timezone-aware now."""
    return datetime.now(UTC)


async def upsert(
    conn: AsyncConnection, table: Table, rows: Iterable[Mapping[str, Any]], keys: list[str]
) -> None:
    """Insert rows or overwrite the ones whose ``keys`` exist."""
    values = [dict(row) for row in rows]
    if not values:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(values)
    updates = {name: statement.excluded[name] for name in values[0] if name not in keys}
    await conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates))


async def insert_ignore(
    conn: AsyncConnection, table: Table, row: Mapping[str, Any], keys: list[str]
) -> bool:
    """Insert a row unless one with the same ``keys`` exists; whether it was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(dict(row)).on_conflict_do_nothing(index_elements=keys)
    result = await conn.execute(statement)
    return bool(result.rowcount)


def envelope(source: str, event: DomainEvent, now: datetime | None = None) -> dict[str, Any]:
    """The CloudEvents-shaped envelope of DESIGN.md section 7, as an outbox row."""
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "type": event.type.value,
        "source": source,
        "subject": event.subject,
        "sequence": event.sequence,
        "time": now or utcnow(),
        "data": event.data,
    }


async def append_events(conn: AsyncConnection, source: str, events: Iterable[DomainEvent]) -> None:
    """Add events to the outbox in the caller's transaction (invariant I4)."""
    rows = [envelope(source, event) for event in events]
    if rows:
        await conn.execute(outbox.insert(), rows)
