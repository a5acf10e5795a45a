"""The password routes on gateway apps built in process around the real user store (SQLite)
and a fake Auth deployment: a change, an admin's reset, bad input, the login rate limit, and a
revocation made on one replica reaching another. No Ray."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from marketplace.config import Settings
from marketplace.domain.catalog import Product
from marketplace.domain.users import Role, User
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.users import UserStore
from serve_app.revocations import Revocations
from tests.unit.test_gateway_deps import served_in_process

pytestmark = pytest.mark.unit

SECRET = "s" * 40
OLD, NEW = "old-password-1", "new-password-2"


class FakeAuth:
    """The Auth deployment's two calls, without argon2's cost."""

    async def hash_password(self, password: str) -> str:
        return "fake:" + password

    async def verify_password(self, password_hash: str | None, password: str) -> bool:
        return password_hash == "fake:" + password


class FakeClient:
    """The real user store; nothing else of the marketplace."""

    def __init__(self, users: UserStore) -> None:
        self.users = users

    def held_product(self, product_id: str) -> Product | None:
        return None


@contextmanager
def replica_over(url: str, settings: Settings) -> Iterator[TestClient]:
    """One gateway replica over the database at ``url``, with its own engine, as in Serve."""
    users = UserStore(create_engine(url))
    revocations = Revocations(
        users.revocations_since, settings.jwt_ttl_s, settings.revocation_poll_s
    )
    with served_in_process(settings, FakeClient(users), FakeAuth(), SECRET, revocations) as http:
        yield http


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    migrate.upgrade(url)
    return url


def register(http: TestClient, role: Role = Role.BUYER) -> dict[str, Any]:
    """A user registered in the store directly, and its token from a real login."""
    email = f"{role.value}-{time.monotonic_ns()}@example.com"

    async def create() -> User:
        users = cast(FakeClient, http.app.state.replica.client).users  # type: ignore[attr-defined]
        return await users.register(email, OLD, "N", role, password_hash="fake:" + OLD)

    user = http.portal.call(create)  # type: ignore[union-attr]
    return {"id": user.id, "email": email, "headers": bearer(login(http, email, OLD))}


def login(http: TestClient, email: str, password: str) -> str:
    reply = http.post("/v1/auth/token", data={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(reply: Any, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    return cast(dict[str, Any], reply.json())


def me(http: TestClient, headers: dict[str, str]) -> Any:
    return http.get("/v1/users/me", headers=headers)


def change(http: TestClient, headers: dict[str, str], old: str, new: str) -> Any:
    body = {"old_password": old, "new_password": new}
    return http.post("/v1/users/me/password", json=body, headers=headers)


def test_a_change_revokes_the_tokens_at_once_and_answers_a_fresh_one(database: str) -> None:
    with replica_over(database, Settings()) as http:
        user = register(http)
        other_session = bearer(login(http, user["email"], OLD))
        reply = change(http, user["headers"], OLD, NEW)
        assert reply.status_code == 200, reply.text
        fresh = reply.json()
        assert fresh["token_type"] == "bearer" and fresh["expires_in"] == 900
        for old_token in (user["headers"], other_session):  # on this replica: exact
            assert problem(me(http, old_token), 401)["code"] == "invalid_token"
        assert me(http, bearer(fresh["access_token"])).json()["id"] == user["id"]
        refused = http.post("/v1/auth/token", data={"username": user["email"], "password": OLD})
        assert problem(refused, 401)["code"] == "bad_credentials"
        assert me(http, bearer(login(http, user["email"], NEW))).status_code == 200


def test_another_replica_refuses_the_old_token_within_its_poll(database: str) -> None:
    settings = Settings(revocation_poll_s=0.05)
    with replica_over(database, settings) as first, replica_over(database, settings) as second:
        user = register(first)
        assert me(second, user["headers"]).status_code == 200  # second has started polling
        assert change(first, user["headers"], OLD, NEW).status_code == 200
        deadline = time.monotonic() + 5
        while me(second, user["headers"]).status_code == 200:
            assert time.monotonic() < deadline, "the other replica still takes the old token"
            time.sleep(0.02)
        assert problem(me(second, user["headers"]), 401)["code"] == "invalid_token"


def test_a_replica_started_after_a_change_refuses_the_old_token(database: str) -> None:
    with replica_over(database, Settings()) as first:
        user = register(first)
        assert change(first, user["headers"], OLD, NEW).status_code == 200
    with replica_over(database, Settings()) as fresh:
        assert problem(me(fresh, user["headers"]), 401)["code"] == "invalid_token"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "old_password"),
        ({"old_password": OLD}, 422, "new_password"),
        ({"new_password": NEW}, 422, "old_password"),
        ({"old_password": OLD, "new_password": "short"}, 422, "new_password"),
        ({"old_password": OLD, "new_password": " " * 12}, 422, "new_password"),
        ({"old_password": OLD, "new_password": "x" * 257}, 422, "new_password"),
        ({"old_password": OLD, "new_password": 12345678}, 422, "new_password"),
        ({"old_password": OLD, "new_password": NEW, "role": "admin"}, 422, "role"),
        ({"old_password": "wrong-password", "new_password": NEW}, 403, None),
        ({"old_password": "", "new_password": NEW}, 422, "old_password"),
    ],
)
def test_bad_input_changes_nothing(
    database: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    with replica_over(database, Settings()) as http:
        user = register(http)
        reply = http.post("/v1/users/me/password", json=body, headers=user["headers"])
        refused = problem(reply, status)
        if field is None:
            assert refused["code"] == "wrong_password"
        else:
            assert field in refused["detail"] or field == refused.get("field"), refused
        assert me(http, user["headers"]).status_code == 200  # the token still works
        login(http, user["email"], OLD)  # and the old password


def test_a_change_needs_a_token(database: str) -> None:
    with replica_over(database, Settings()) as http:
        body = {"old_password": OLD, "new_password": NEW}
        reply = http.post("/v1/users/me/password", json=body)
        assert problem(reply, 401)["code"] == "unauthenticated"


def test_old_password_attempts_count_against_the_login_limit(database: str) -> None:
    with replica_over(database, Settings(login_rate_per_minute=3)) as http:
        user = register(http)  # its login spent one of the three
        for _ in range(2):
            problem(change(http, user["headers"], "wrong-password", NEW), 403)
        limited = change(http, user["headers"], OLD, NEW)
        assert problem(limited, 429)["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        reply = http.post("/v1/auth/token", data={"username": user["email"], "password": OLD})
        problem(reply, 429)  # the same bucket as logging in


def test_an_admin_resets_a_password(database: str) -> None:
    with replica_over(database, Settings()) as http:
        admin, target = register(http, Role.ADMIN), register(http)
        reply = http.post(
            f"/v1/admin/users/{target['id']}/password",
            json={"new_password": NEW},
            headers=admin["headers"],
        )
        assert reply.status_code == 204 and reply.content == b""
        assert problem(me(http, target["headers"]), 401)["code"] == "invalid_token"
        assert me(http, admin["headers"]).status_code == 200  # the admin's own token is kept
        login(http, target["email"], NEW)
        unknown = http.post(
            "/v1/admin/users/usr_" + "0" * 32 + "/password",
            json={"new_password": NEW},
            headers=admin["headers"],
        )
        assert problem(unknown, 404)["code"] == "not_found"
        malformed = http.post(
            "/v1/admin/users/usr_unknown/password",
            json={"new_password": NEW},
            headers=admin["headers"],
        )
        assert problem(malformed, 422)["code"] == "invalid_input"
        short = http.post(
            f"/v1/admin/users/{target['id']}/password",
            json={"new_password": "short"},
            headers=admin["headers"],
        )
        problem(short, 422)
        login(http, target["email"], NEW)


@pytest.mark.parametrize("role", [Role.BUYER, Role.SELLER, Role.CARRIER])
def test_only_an_admin_resets_a_password(database: str, role: Role) -> None:
    with replica_over(database, Settings()) as http:
        caller, target = register(http, role), register(http)
        path = f"/v1/admin/users/{target['id']}/password"
        body = {"new_password": NEW}
        assert problem(http.post(path, json=body, headers=caller["headers"]), 403)
        assert problem(http.post(path, json=body), 401)
        assert me(http, target["headers"]).status_code == 200
        login(http, target["email"], OLD)
