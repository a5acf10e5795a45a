"""The Alembic migrations build exactly the schema that ``marketplace.store.tables`` declares,
on SQLite and on PostgreSQL, so a table or column added to one and not the other fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.tables import metadata
from tests.conftest import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration


def _compare(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def _differences(url: str) -> list[Any]:
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_compare)
    finally:
        await engine.dispose()


async def test_migrations_match_the_tables_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    assert await _differences(url) == []
    assert await _differences(url) == []  # upgrading again is a no-op


@pytest.mark.postgres
async def test_migrations_match_the_tables_on_postgres() -> None:
    url = await create_pg_database()
    try:
        assert await _differences(url) == []
    finally:
        await drop_pg_database(url)
