"""Serve autoscales the gateway: more replicas under load, back to one after it.

A second Serve application ("scaling", under the route prefix /scaling) is deployed beside the
session's "marketplace" application on the same Ray and Serve. It reuses the served runtime's
actors and database (same settings, so its gateway replicas find the actors by name and create
nothing new) and differs only in its autoscaling: one to three gateway replicas, a target of one
ongoing request each, short delays and a tiny CPU share so that three replicas fit.

The load is concurrent checkouts: each one is a saga over several actors with SQLite commits, so
requests stay in the gateway long enough for ongoing requests to pile up. Serve measures
ongoing requests on the replicas themselves under the HAProxy ingress (direct ingress) and on
the proxy's handles under the Python proxy; either way 10 concurrent checkouts ask for more than
one replica. More load would not ask for more (three replicas at most), and would only slow the
new replicas' start on a 2-core machine: with 30 clients, on a slow day, two replicas stayed
STARTING for the whole 90 s window. The test asserts only on replica counts, with generous
bounded waits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import signup

pytestmark = pytest.mark.e2e

APP = "scaling"
PREFIX = "/scaling"
DEPLOYMENT = "Gateway"
MAX_REPLICAS = 3
CLIENTS = 10
LOAD_AT_MOST_S = 180.0
SETTLE_AT_MOST_S = 120.0
POLL_S = 1.0
LOOK_BACK_S = 11.0
ADDRESS = {"name": "Bo", "street": "1 Main St", "city": "Town", "zip": "12345", "country": "US"}


def replica_states(app: str = APP, deployment: str = DEPLOYMENT) -> dict[str, int]:
    """How many replicas of the deployment are in each state (e.g. {"RUNNING": 2})."""
    from ray import serve

    application = serve.status().applications.get(app)
    if application is None or deployment not in application.deployments:
        return {}
    states = application.deployments[deployment].replica_states
    return {str(getattr(state, "value", state)): count for state, count in states.items()}


@pytest.fixture
def scaling_app(served: dict[str, Any]) -> Iterator[str]:
    """Deploy the "scaling" application; yields its base URL; deletes it afterwards."""
    from ray import serve

    from serve_app.app import build_app

    settings = served["settings"].model_copy(
        update={
            "gateway_min_replicas": 1,
            "gateway_max_replicas": MAX_REPLICAS,
            "gateway_target_ongoing_requests": 1,
            "gateway_num_cpus": 0.01,
            "auth_min_replicas": 1,
            "auth_max_replicas": 1,
            "auth_num_cpus": 0.01,
            "upscale_delay_s": 1.0,
            "downscale_delay_s": 5.0,
            "checkout_rate_per_minute": 1_000_000,
            # Serve averages ongoing requests over the last 30 s by default, so the average
            # took most of half a minute to fall after the load stopped. A shorter window
            # follows the load more closely; it must stay above Serve's metrics interval
            # (10 s), or Serve warns.
            "gateway_look_back_period_s": LOOK_BACK_S,
        }
    )
    app = build_app(settings)
    serve.run(app, name=APP, route_prefix=PREFIX)
    try:
        yield served["url"] + PREFIX
    finally:
        serve.delete(APP)


async def wait_for(
    predicate: Any, within_s: float, history: list[dict[str, int]]
) -> dict[str, int]:
    """Poll the replica states until ``predicate(states)`` holds or ``within_s`` passes;
    returns the last states (each poll is appended to ``history``)."""
    deadline = time.monotonic() + within_s
    while True:
        states = await asyncio.to_thread(replica_states)
        history.append(states)
        if predicate(states) or time.monotonic() > deadline:
            return states
        await asyncio.sleep(POLL_S)


async def test_gateway_scales_out_under_load_and_back_in(
    scaling_app: str, served: dict[str, Any], http: httpx.AsyncClient
) -> None:
    # Both applications answer, each under its own prefix: "/" is the marketplace, and the
    # scaling app's routes are the gateway's absolute /v1/... routes below /scaling.
    async with httpx.AsyncClient(base_url=scaling_app, timeout=120) as scaled:
        assert (await scaled.get("/v1/health")).json() == {"status": "ok"}
        assert (await http.get("/v1/health")).json() == {"status": "ok"}
        assert replica_states().get("RUNNING") == 1, replica_states()

        seller = await signup(http, "seller")
        buyers = await asyncio.gather(*(signup(http, "buyer") for _ in range(5)))
        created = await http.post(
            "/v1/products",
            json={
                "name": "Scaling mug",
                "category": "kitchen",
                "price_cents": 500,
                "initial_stock": 1_000_000,
            },
            headers=seller["headers"],
        )
        assert created.status_code == 201, created.text
        body = {
            "items": [{"product_id": created.json()["id"], "quantity": 1}],
            "payment": {"card_token": "tok_visa"},
            "shipping_address": ADDRESS,
        }
        # The scaling app's gateway checks the tokens the marketplace issued (same settings).
        first = await scaled.post(
            "/v1/orders",
            json=body,
            headers={**buyers[0]["headers"], "Idempotency-Key": uuid.uuid4().hex},
        )
        assert first.status_code == 201 and first.json()["status"] == "confirmed", first.text

        stop = asyncio.Event()
        statuses: Counter[str] = Counter()

        async def client(number: int) -> None:
            headers = buyers[number % len(buyers)]["headers"]
            while not stop.is_set():
                try:
                    reply = await scaled.post(
                        "/v1/orders",
                        json=body,
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    )
                    statuses[str(reply.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

        history: list[dict[str, int]] = []
        began = time.monotonic()
        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        try:
            under_load = await wait_for(
                lambda states: states.get("RUNNING", 0) > 1, LOAD_AT_MOST_S, history
            )
        finally:
            stop.set()
            await asyncio.gather(*clients)
        assert under_load.get("RUNNING", 0) > 1, (
            f"the gateway did not scale out: {under_load}; checkouts answered {dict(statuses)}; "
            f"states seen {history[-5:]}"
        )
        assert statuses["201"] > 0, dict(statuses)
        # Shown by pytest -rP (or on a failure below): what happened, not asserted on.
        print(f"scaled out to {under_load} after {time.monotonic() - began:.0f}s of load;")
        print(f"checkouts answered {dict(statuses)}")

        history.clear()
        began = time.monotonic()
        after = await wait_for(lambda states: states == {"RUNNING": 1}, SETTLE_AT_MOST_S, history)
        print(f"back to {after} {time.monotonic() - began:.0f}s after the load stopped")
        assert after == {"RUNNING": 1}, (
            f"the gateway did not scale back in: {after}; states seen {history[-5:]}"
        )
        assert (await scaled.get("/v1/health")).status_code == 200


def test_deleting_the_scaling_app_leaves_the_marketplace(served: dict[str, Any]) -> None:
    """Runs after the scaling test's fixture deleted its app: only "marketplace" is left."""
    from ray import serve

    applications = serve.status().applications
    assert APP not in applications
    assert "marketplace" in applications
    assert str(applications["marketplace"].status.value) == "RUNNING"
    reply = httpx.get(served["url"] + "/v1/health", timeout=30)
    assert reply.status_code == 200 and reply.json() == {"status": "ok"}
    # The ingress forgets the prefix soon after the app is gone; then "/" (the marketplace)
    # answers for it, with its own 404.
    deadline = time.monotonic() + 60
    while True:
        missing = httpx.get(served["url"] + PREFIX + "/v1/health", timeout=30)
        if missing.status_code == 404 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert missing.status_code == 404, missing.text
