"""Changing a password and an admin's reset, through the real gateway: the old password and
every token issued before stop working, the new password and the fresh token work, and only an
admin resets. (Each route's bad input is in test_bad_input, who may call it in
test_authorization; the in-process details, such as the login rate limit, in
tests/unit/test_password_routes.py.)"""

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import login, signup
from tests.e2e.support import (
    PASSWORD,
    admin_headers,
    assert_problem,
    bearer,
    eventually,
    ok,
    unique,
)

pytestmark = pytest.mark.e2e

# The served revocation poll is 1 s (the default): another replica refuses an old token within
# about that. The e2e gateway runs two replicas.
POLL_S = 1.0
REVOKED_WITHIN_S = 10.0


async def me(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.get("/v1/users/me", headers=headers)


async def refused(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """The token in ``headers`` is refused (at once on the replica that made the change, within
    one poll of the revocations on another), with a 401 problem."""

    async def status() -> int:
        return (await me(http, headers)).status_code

    await eventually(status, lambda code: code == 401, timeout_s=REVOKED_WITHIN_S)
    # Refused by one replica; every other one refuses it after its next poll (1 s here).
    await asyncio.sleep(POLL_S * 2.5)
    for reply in await asyncio.gather(*(me(http, headers) for _ in range(20))):
        problem = assert_problem(reply, 401)
        assert problem["code"] == "invalid_token"
        assert "bearer" in reply.headers["www-authenticate"].lower()


async def bad_login(http: httpx.AsyncClient, email: str, password: str) -> None:
    reply = await http.post("/v1/auth/token", data={"username": email, "password": password})
    assert assert_problem(reply, 401)["code"] == "bad_credentials"


async def test_a_password_change_revokes_the_old_password_and_tokens(
    http: httpx.AsyncClient,
) -> None:
    user = await signup(http)
    other_session = bearer(await login(http, user["email"], PASSWORD))
    new = unique("new-password-")
    reply = await http.post(
        "/v1/users/me/password",
        json={"old_password": PASSWORD, "new_password": new},
        headers=user["headers"],
    )
    fresh = ok(reply)
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] > 0
    assert ok(await me(http, bearer(fresh["access_token"])))["id"] == user["id"]
    await refused(http, user["headers"])
    await refused(http, other_session)
    await bad_login(http, user["email"], PASSWORD)
    logged_in = bearer(await login(http, user["email"], new))
    assert ok(await me(http, logged_in))["id"] == user["id"]
    # the fresh token still works after the others were refused
    assert ok(await me(http, bearer(fresh["access_token"])))["id"] == user["id"]


async def test_a_refused_change_changes_nothing(http: httpx.AsyncClient) -> None:
    user = await signup(http)
    path = "/v1/users/me/password"
    wrong = await http.post(
        path,
        json={"old_password": "not-my-password", "new_password": "another-password"},
        headers=user["headers"],
    )
    assert assert_problem(wrong, 403)["code"] == "wrong_password"
    for body in (
        {},
        {"old_password": PASSWORD},
        {"old_password": PASSWORD, "new_password": "short"},
        {"old_password": PASSWORD, "new_password": " " * 10},
        {"old_password": PASSWORD, "new_password": "another-password", "role": "admin"},
    ):
        assert_problem(await http.post(path, json=body, headers=user["headers"]), 422)
    anonymous = await http.post(
        path, json={"old_password": PASSWORD, "new_password": "another-password"}
    )
    assert_problem(anonymous, 401)
    assert ok(await me(http, user["headers"]))["id"] == user["id"]
    await login(http, user["email"], PASSWORD)


async def test_an_admin_resets_a_password_and_nobody_else_may(http: httpx.AsyncClient) -> None:
    admin = await admin_headers(http)
    target, buyer = await signup(http), await signup(http)
    seller = await signup(http, "seller")
    path = f"/v1/admin/users/{target['id']}/password"
    new: dict[str, Any] = {"new_password": unique("reset-password-")}
    for headers in (buyer["headers"], seller["headers"], target["headers"]):
        assert_problem(await http.post(path, json=new, headers=headers), 403)
    assert_problem(await http.post(path, json=new), 401)
    assert ok(await me(http, target["headers"]))["id"] == target["id"]
    await login(http, target["email"], PASSWORD)

    unknown = await http.post(
        "/v1/admin/users/usr_" + "0" * 32 + "/password", json=new, headers=admin
    )
    assert assert_problem(unknown, 404)["code"] == "not_found"
    short = await http.post(path, json={"new_password": "short"}, headers=admin)
    assert_problem(short, 422)

    reply = await http.post(path, json=new, headers=admin)
    assert reply.status_code == 204, reply.text
    assert reply.content == b""
    await refused(http, target["headers"])
    await bad_login(http, target["email"], PASSWORD)
    assert ok(await me(http, bearer(await login(http, target["email"], new["new_password"]))))
    assert ok(await me(http, admin))  # the admin's own token is untouched
