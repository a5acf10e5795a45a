"""Small pieces shared by the store modules: the clock, ownership, insert-if-absent and the
outbox envelope."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplace.domain.events import DomainEvent


def utcnow() -> datetime:
    """Timezone-aware now."""
    return datetime.now(UTC)


def owned(table: Table, index: int, count: int) -> ColumnElement[bool]:
    """The rows of ``table`` that actor ``index`` of ``count`` owns (by ``route_key``)."""
    return (table.c.route_key % count) == index


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
