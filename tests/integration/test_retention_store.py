"""The store's retention queries on PostgreSQL (the unit test runs them on SQLite): a buyer's
orders paged by keyset, Idempotency-Keys loaded by their window and pruned in batches, old
published events and inbox ids pruned."""

from __future__ import annotations

import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.unit.test_retention_store import (
    check_buyer_pages,
    check_event_pruning,
    check_key_window,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_a_buyers_orders_page_in_the_store_on_postgres() -> None:
    url = await create_pg_database()
    try:
        await check_buyer_pages(url)
    finally:
        await drop_pg_database(url)


async def test_keys_load_by_window_and_prune_in_batches_on_postgres() -> None:
    url = await create_pg_database()
    try:
        await check_key_window(url)
    finally:
        await drop_pg_database(url)


async def test_old_published_events_and_inbox_ids_are_pruned_on_postgres() -> None:
    url = await create_pg_database()
    try:
        await check_event_pruning(url)
    finally:
        await drop_pg_database(url)
