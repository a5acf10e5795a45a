"""Seeding waits out rate limits and brief unavailability (marketplace/sim/http_seed.send)."""

from __future__ import annotations

import httpx
import pytest

from marketplace.sim import http_seed

pytestmark = pytest.mark.unit


def replies(*statuses: int) -> tuple[httpx.MockTransport, list[int]]:
    answered: list[int] = []
    queue = list(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        status = queue.pop(0) if len(queue) > 1 else queue[0]
        answered.append(status)
        return httpx.Response(status, headers={"Retry-After": "0"})

    return httpx.MockTransport(handler), answered


async def send(transport: httpx.MockTransport, retries: int = 2) -> int:
    async with httpx.AsyncClient(transport=transport, base_url="http://seed.test") as http:
        return (
            await http_seed.send(http, "POST", "/v1/users", body={}, retries=retries)
        ).status_code


async def test_rate_limits_are_waited_out_past_the_retry_count() -> None:
    transport, answered = replies(429, 429, 429, 429, 201)
    assert await send(transport, retries=2) == 201
    assert answered == [429, 429, 429, 429, 201]


async def test_unavailability_is_retried_only_so_often() -> None:
    transport, answered = replies(503)
    assert await send(transport, retries=2) == 503
    assert answered == [503, 503, 503]


async def test_a_limit_that_outlasts_the_patience_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_seed, "RATE_LIMIT_PATIENCE_S", -1.0)
    transport, answered = replies(429)
    assert await send(transport) == 429
    assert answered == [429]
