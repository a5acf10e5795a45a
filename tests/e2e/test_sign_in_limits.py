"""Login, registration and checkout limits hold for the whole gateway, not per replica.

A second application ("limited", under /limited) beside the session's, over the same actors and
database, with two gateway replicas and small limits. It trusts one proxy hop, so the test
plays that proxy and says which client address each request comes from (X-Forwarded-For).
Requests reach both replicas through Serve's ingress; with per-replica buckets twice the limit
would get through. Checkouts are counted per replica at its share of the rate (the rate divided
by the live replicas, which beat every half second here).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import signup
from tests.e2e.support import order_body
from tests.e2e.test_autoscaling import replica_states

pytestmark = pytest.mark.e2e

APP = "limited"
PREFIX = "/limited"
LOGINS_PER_ACCOUNT = 3
REGISTRATIONS_PER_ADDRESS = 4
CHECKOUTS_PER_BUYER = 4
HEARTBEAT_S = 0.5
ATTEMPTS = 16


@pytest.fixture(scope="module")
def limited(served: dict[str, Any]) -> Iterator[str]:
    """Deploy the "limited" application with two gateway replicas; yields its base URL."""
    from ray import serve

    from serve_app.app import build_app

    settings = served["settings"].model_copy(
        update={
            "gateway_min_replicas": 2,
            "gateway_max_replicas": 2,
            "gateway_num_cpus": 0.01,
            "auth_min_replicas": 1,
            "auth_max_replicas": 1,
            "auth_num_cpus": 0.01,
            "login_rate_per_minute": LOGINS_PER_ACCOUNT,
            "login_rate_per_address_per_minute": 1000,
            "registration_rate_per_address_per_minute": REGISTRATIONS_PER_ADDRESS,
            "registration_rate_per_minute": 1000,
            "trusted_proxy_hops": 1,
            "checkout_rate_per_minute": CHECKOUTS_PER_BUYER,
            "gateway_heartbeat_s": HEARTBEAT_S,
        }
    )
    serve.run(build_app(settings), name=APP, route_prefix=PREFIX)
    try:
        deadline = time.monotonic() + 120
        while replica_states(APP).get("RUNNING") != 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert replica_states(APP).get("RUNNING") == 2, replica_states(APP)
        yield served["url"] + PREFIX
    finally:
        serve.delete(APP)


def came_from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_a_password_flood_is_limited_across_replicas_and_spares_the_owner(
    limited: str, http: httpx.AsyncClient
) -> None:
    victim = await signup(http, "buyer")  # through the session's app: same users
    async with httpx.AsyncClient(base_url=limited, timeout=60) as gateway:
        replies = await asyncio.gather(
            *(
                gateway.post(
                    "/v1/auth/token",
                    data={"username": victim["email"], "password": f"guess-{i}"},
                    headers=came_from("203.0.113.7"),
                )
                for i in range(ATTEMPTS)
            )
        )
        statuses = sorted(reply.status_code for reply in replies)
        # Exactly the account's limit was checked, whichever replica each attempt reached.
        assert statuses == [401] * LOGINS_PER_ACCOUNT + [429] * (ATTEMPTS - LOGINS_PER_ACCOUNT), (
            statuses
        )
        refused = next(reply for reply in replies if reply.status_code == 429)
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        # The owner, from home, still logs in during the flood.
        home = await gateway.post(
            "/v1/auth/token",
            data={"username": victim["email"], "password": "password123"},
            headers=came_from("198.51.100.20"),
        )
        assert home.status_code == 200, home.text


async def test_sign_ups_from_one_address_are_limited_across_replicas(limited: str) -> None:
    async with httpx.AsyncClient(base_url=limited, timeout=60) as gateway:

        async def sign_up(i: int, address: str) -> tuple[str, httpx.Response]:
            email = f"flood-{time.time_ns()}-{i}@example.com"
            body = {"email": email, "password": "password123", "name": "Flood", "role": "buyer"}
            return email, await gateway.post("/v1/users", json=body, headers=came_from(address))

        tried = await asyncio.gather(*(sign_up(i, "203.0.113.9") for i in range(ATTEMPTS)))
        statuses = sorted(reply.status_code for _, reply in tried)
        assert statuses == [201] * REGISTRATIONS_PER_ADDRESS + [429] * (
            ATTEMPTS - REGISTRATIONS_PER_ADDRESS
        ), statuses
        # A refused sign-up made no account; another address may still sign up.
        email = next(email for email, reply in tried if reply.status_code == 429)
        login = await gateway.post(
            "/v1/auth/token",
            data={"username": email, "password": "password123"},
            headers=came_from("198.51.100.30"),
        )
        assert login.status_code == 401, login.text
        assert (await sign_up(99, "198.51.100.30"))[1].status_code == 201


async def test_a_buyer_meets_the_checkout_rate_however_many_replicas_serve_them(
    limited: str, http: httpx.AsyncClient
) -> None:
    from ray import serve

    limits = serve.get_deployment_handle("Limits", app_name=APP)
    for _ in range(int(60 / HEARTBEAT_S)):
        if await limits.gateways_alive.remote() == 2:
            break
        await asyncio.sleep(HEARTBEAT_S)
    assert await limits.gateways_alive.remote() == 2
    # Both replicas have heard the count back by their next beat.
    await asyncio.sleep(3 * HEARTBEAT_S)
    buyer = await signup(http, "buyer")
    async with httpx.AsyncClient(base_url=limited, timeout=60) as gateway:
        replies = await asyncio.gather(
            *(
                gateway.post(
                    "/v1/orders",
                    # An unknown product: past the limit, the checkout is refused (404) and
                    # nothing is ordered; the limit is spent before the lines are looked at.
                    json=order_body([("prd_" + "0" * 32, 1)]),
                    headers={**buyer["headers"], "Idempotency-Key": f"rate-{i}"},
                )
                for i in range(ATTEMPTS)
            )
        )
    statuses = [reply.status_code for reply in replies]
    # Each replica lets through its half of the rate: with per-replica buckets at the whole
    # rate, requests spread over both replicas would pass twice over.
    assert 1 <= sum(status != 429 for status in statuses) <= CHECKOUTS_PER_BUYER, statuses
    assert set(statuses) <= {404, 429}, statuses
