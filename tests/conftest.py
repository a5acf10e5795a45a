"""Shared fixtures: one Ray for the whole session, and fresh marketplaces on SQLite or PostgreSQL.

PostgreSQL tests need the server at MARKETPLACE_TEST_PG_URL (default: the local one); they
fail, not skip, when it is missing, so CI cannot pass without it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

# Before Ray is imported anywhere: the Serve ingress under test is the one `marketplace up`
# uses (HAProxy, on free ports, with Serve's request metrics kept by the replicas), and
# workers run in this interpreter's environment rather than through `uv run` (Ray's uv hook
# would ship the working directory to every worker).
os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
# A gateway replica behind HAProxy stays reachable this long when it stops, so that load
# balancers outside the cluster can deregister it (Serve's default: 30 s). Here the only balancer
# is Serve's own HAProxy, reloaded within a second of the change (and it retries a refused
# connection on another replica), while the 30 s were paid by every scale-in the autoscaling test
# waits for, by every deleted application and once more at the end of the session.
os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
# Processes send what they recorded (actors/metrics.py) to their node's export every this many
# ms (Ray's default: 10 s), so that a test reads a figure within a couple of seconds.
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")
from serve_app.serving import prepare_haproxy

prepare_haproxy()

PG_ADMIN_URL = os.environ.get(
    "MARKETPLACE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RAY_TEST_CPUS = 4
# The runtime defaults to one actor of each kind (the fastest on small machines), and so do the
# tests' marketplaces: every actor is a process of its own, and starting one costs about 2.5 s
# of CPU here (most of it Ray's own import), which made up most of the suite's time. The tests
# that cover routing by key, scatter-gather and a kill that takes out half of a kind (the served
# e2e marketplace, the invariants under kills, the fault plans, the simulator's client target)
# ask for two of each sharded kind with this.
SPREAD_OVER_ACTORS = {"catalog_shards": 2, "inventory_partitions": 2, "order_coordinators": 2}


@pytest.fixture(scope="session")
def ray_address() -> Any:
    """Start one local Ray for the session; yields its address for subprocesses to join."""
    import ray

    ray.init(
        address="local",  # not a `ray start` cluster another test left on this machine
        num_cpus=RAY_TEST_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        namespace="tests",
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


async def create_pg_database() -> str:
    """A fresh, empty PostgreSQL database; returns its URL."""
    import asyncpg

    name = "mkt_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(url: str) -> None:
    """Drop a database made by ``create_pg_database``."""
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


MakeMarketplace = Callable[..., Awaitable[Any]]


async def start_marketplace(
    folder: Path, database: str = "sqlite", **overrides: Any
) -> tuple[Any, str | None]:
    """A fresh marketplace (own actor namespace, own database); returns ``(runtime, pg_url)``,
    ``pg_url`` being the PostgreSQL database to drop after it (``None`` on SQLite)."""
    from actors.runtime import Runtime
    from marketplace.config import Settings

    pg_url = None
    if database == "postgres":
        pg_url = await create_pg_database()
        url = pg_url
    else:
        url = f"sqlite:///{folder / ('mkt-' + uuid.uuid4().hex[:8] + '.db')}"
    settings = Settings(
        database_url=url,
        namespace="t" + uuid.uuid4().hex[:10],
        actor_num_cpus=0.01,
        **overrides,
    )
    runtime = Runtime(settings)
    await runtime.start()
    return runtime, pg_url


async def stop_marketplace(runtime: Any, pg_url: str | None) -> None:
    """Stop a marketplace made by ``start_marketplace`` and drop its PostgreSQL database."""
    await runtime.stop()
    if pg_url:
        await drop_pg_database(pg_url)


@pytest_asyncio.fixture
async def make_marketplace(ray_address: str, tmp_path: Path) -> AsyncIterator[MakeMarketplace]:
    """A factory of fresh marketplaces (own actor namespace, own database), torn down after.

    ``await make_marketplace(database="sqlite" | "postgres", **settings)`` returns the runtime;
    its ``client`` drives it.
    """
    made: list[tuple[Any, str | None]] = []

    async def make(database: str = "sqlite", **overrides: Any) -> Any:
        runtime, pg_url = await start_marketplace(tmp_path, database, **overrides)
        made.append((runtime, pg_url))
        return runtime

    yield make
    for runtime, pg_url in made:
        await stop_marketplace(runtime, pg_url)
    await asyncio.sleep(0)


@pytest_asyncio.fixture(scope="module")
async def shared_marketplace(
    ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Any]:
    """One SQLite marketplace for every test of a module that asks for it (the runtime).

    For tests that only add data of their own (their own ids, emails and orders) and neither
    kill, restart nor reconfigure an actor: each of them would otherwise pay a runtime start.
    """
    runtime, pg_url = await start_marketplace(tmp_path_factory.mktemp("shared"))
    yield runtime
    await stop_marketplace(runtime, pg_url)
