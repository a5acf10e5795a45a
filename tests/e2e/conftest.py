"""One marketplace served over HTTP by Ray Serve for the whole e2e session, on SQLite; and, for
the modules that run on both stores, a second one on PostgreSQL beside it (same Ray, same Serve,
its own application under ``/postgres``)."""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from marketplace.config import Settings
from tests.conftest import SPREAD_OVER_ACTORS, create_pg_database, drop_pg_database

ADMIN_EMAIL = "admin@e2e.test"
ADMIN_PASSWORD = "admin-e2e-password"
# The limits the e2e callers would otherwise run into: every test signs up and logs in its own
# users from one address, and some check out many times.
NO_RATE_LIMITS: dict[str, Any] = {
    "checkout_rate_per_minute": 100_000,
    "login_rate_per_minute": 100_000,
    "login_rate_per_address_per_minute": 100_000,
    "registration_rate_per_address_per_minute": 100_000,
    "registration_rate_per_minute": 100_000,
}
POSTGRES_APP = "marketplace-postgres"
POSTGRES_PREFIX = "/postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def served(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the runtime and the Serve app; yields {"url", "settings", "runtime"}."""
    import asyncio

    from ray import serve

    from actors.runtime import Runtime
    from serve_app.app import build_app

    db = Path(tmp_path_factory.mktemp("e2e")) / "e2e.db"
    port = _free_port()
    settings = Settings(
        database_url=f"sqlite:///{db}",
        namespace="e2e" + uuid.uuid4().hex[:8],
        actor_num_cpus=0.01,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,  # type: ignore[arg-type]
        jwt_secret=secrets.token_urlsafe(48),  # type: ignore[arg-type]
        http_port=port,
        **NO_RATE_LIMITS,
        gateway_num_cpus=0.05,
        # Two replicas, as a cluster has: per-replica state must not show through (metrics
        # add up, a held product copy is as fresh on either).
        gateway_min_replicas=2,
        # Every request is traced, so every test also checks that a traced call reaches its
        # actor method intact (tests/e2e/test_tracing.py follows one checkout's trace).
        trace_sample=1.0,
        trace_dir=str(db.parent / "traces"),
        auth_num_cpus=0.05,
        **SPREAD_OVER_ACTORS,
    )
    runtime = Runtime(settings)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runtime.start())
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False},
    )
    serve.run(build_app(runtime.settings), name="marketplace", route_prefix="/")
    yield {
        "url": f"http://127.0.0.1:{port}",
        "settings": runtime.settings,
        "runtime": runtime,
        "store": "sqlite",
    }
    serve.delete("marketplace")
    serve.shutdown()
    loop.run_until_complete(runtime.stop())
    loop.close()


@pytest.fixture(scope="session")
def served_postgres(served: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A second marketplace on a fresh PostgreSQL database, served by the session's Serve under
    ``/postgres``; yields {"url", "settings", "runtime", "store"} as ``served`` does.

    Started only by the modules that ask for it, and kept small (one actor of each kind, one
    gateway replica, no tracing): it is there to show that what the store refuses is refused at
    the edge, not to repeat what the SQLite marketplace covers. Without the PostgreSQL server
    its tests fail: they do not skip.
    """
    import asyncio

    from ray import serve

    from actors.runtime import Runtime
    from serve_app.app import build_app

    loop = asyncio.new_event_loop()
    pg_url = loop.run_until_complete(create_pg_database())
    settings = Settings(
        database_url=pg_url,
        namespace="e2epg" + uuid.uuid4().hex[:8],
        actor_num_cpus=0.01,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,  # type: ignore[arg-type]
        jwt_secret=secrets.token_urlsafe(48),  # type: ignore[arg-type]
        **NO_RATE_LIMITS,
        gateway_num_cpus=0.05,
        gateway_min_replicas=1,
        gateway_max_replicas=1,
        auth_num_cpus=0.05,
    )
    runtime = Runtime(settings)
    try:
        loop.run_until_complete(runtime.start())
        serve.run(build_app(runtime.settings), name=POSTGRES_APP, route_prefix=POSTGRES_PREFIX)
        yield {
            "url": served["url"] + POSTGRES_PREFIX,
            "settings": runtime.settings,
            "runtime": runtime,
            "store": "postgres",
        }
    finally:
        try:
            serve.delete(POSTGRES_APP)
            loop.run_until_complete(runtime.stop())
        finally:
            loop.run_until_complete(drop_pg_database(pg_url))
            loop.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served_on_store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``served``, then ``served_postgres``: a module that takes this runs each of its tests
    against both stores (the SQLite ones first, as pytest groups a module's tests by this
    module-scoped parameter), or on PostgreSQL only those its ``on_postgres`` accepts (see
    ``pytest_collection_modifyitems`` below)."""
    name = "served" if request.param == "sqlite" else "served_postgres"
    marketplace: dict[str, Any] = request.getfixturevalue(name)
    return marketplace


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the PostgreSQL runs that a ``served_on_store`` module keeps to SQLite.

    A module that defines ``on_postgres(params) -> bool`` (``params``: the test's parameters)
    runs on PostgreSQL only the tests it accepts; every one still runs on SQLite. The others
    are reported as deselected, not skipped.
    """
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        choose = getattr(getattr(item, "module", None), "on_postgres", None)
        if (
            callspec is not None
            and choose is not None
            and callspec.params.get("served_on_store") == "postgres"
            and not choose(callspec.params)
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest_asyncio.fixture
async def http(served: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client against the served marketplace."""
    async with httpx.AsyncClient(base_url=served["url"], timeout=60) as client:
        yield client


async def signup(
    http: httpx.AsyncClient, role: str = "buyer", admin_token: str | None = None
) -> dict[str, Any]:
    """Register a fresh user and log in; returns {"id", "email", "token", "headers"}."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    created = await http.post(
        "/v1/users",
        json={"email": email, "password": "password123", "name": role.title(), "role": role},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    token = await login(http, email, "password123")
    return {
        "id": created.json()["id"],
        "email": email,
        "token": token,
        "headers": {"Authorization": f"Bearer {token}"},
    }


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    """An access token for the credentials."""
    reply = await http.post("/v1/auth/token", data={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])
