"""The rehearsal's database: a fresh PostgreSQL database per cluster, prepared as the head
pod's init container prepares it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

from cluster.local.environment import node_environment
from cluster.local.processes import log
from cluster.local.state import LocalCluster

PG_ADMIN_URL = os.environ.get(
    "MARKETPLACE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def _pg(admin_url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_database(admin_url: str = PG_ADMIN_URL) -> str:
    """A fresh, empty PostgreSQL database; its URL."""
    name = "mkt_rehearsal_" + uuid.uuid4().hex[:10]
    asyncio.run(_pg(admin_url, f'CREATE DATABASE "{name}"'))
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Drop a database ``create_database`` made, even with sessions still open."""
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def prepare_database(cluster: LocalCluster) -> None:
    """Migrate and ensure the admin, as the head pod's init container does."""
    log("preparing the database (python -m serve_app.bootstrap)")
    subprocess.run(
        [sys.executable, "-m", "serve_app.bootstrap", "--wait", "60"],
        env=node_environment(cluster),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=180,
    )
