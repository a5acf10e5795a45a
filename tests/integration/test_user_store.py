"""The user store's password changes and revocations on PostgreSQL (the unit test runs them on
SQLite)."""

from __future__ import annotations

import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.unit.test_user_store import check_password_changes

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_the_store_bumps_the_version_with_each_change_on_postgres() -> None:
    url = await create_pg_database()
    try:
        await check_password_changes(url)
    finally:
        await drop_pg_database(url)
