"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from async_lru import alru_cache
from fastapi import APIRouter, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from actors.client import MarketplaceClient
from serve_app import metrics, problems
from serve_app.deps import Client

log = logging.getLogger("marketplace.gateway")
router = APIRouter(tags=["operations"])

# Both endpoints answer anyone and each answer asks every actor, so a flood of them would be a
# flood of actor calls. Within these windows a replica answers from the last figures, and
# requests that arrive while they are being fetched wait for that one fetch (async-lru shares
# it); a failed fetch is not kept. Probes and scrapes come every few seconds at most.
READY_TTL_S = 1.0
SCRAPE_TTL_S = 5.0


@alru_cache(maxsize=2, ttl=READY_TTL_S)
async def actors_ready(client: MarketplaceClient) -> int:
    """How many actors answered ``ready`` (at most one fetch per ``READY_TTL_S``)."""
    return len(await asyncio.wait_for(client.ready(), 5))


@alru_cache(maxsize=2, ttl=SCRAPE_TTL_S)
async def business_figures(
    client: MarketplaceClient,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """The coordinators' counters and the relay's figures (one fetch per ``SCRAPE_TTL_S``)."""
    stats = await asyncio.wait_for(client.order_stats(), 2)
    relay = await asyncio.wait_for(client.relay_stats(), 2)
    return stats, relay


@router.get("/v1/health")
async def health() -> dict[str, str]:
    """Cheap liveness: answers without touching an actor."""
    return {"status": "ok"}


@router.get("/v1/ready")
async def ready(client: Client) -> Response:
    """Readiness: every actor answers (checked at most once a second per replica)."""
    try:
        actors = await actors_ready(client)
    except Exception as exc:
        # The cause stays in the log: a Ray error's text names hosts, pids and code.
        log.warning("readiness: actors not ready: %r", exc)
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return problems.problem(503, f"actors not ready ({reason})", code="not_ready")
    return Response(
        content=f'{{"status":"ready","actors":{actors}}}', media_type="application/json"
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(client: Client) -> Response:
    """Prometheus text: request counts and latency per route, business counters (fetched from
    the actors at most every ``SCRAPE_TTL_S`` per replica)."""
    try:
        stats, relay = await business_figures(client)
        metrics.record_order_counters(stats)
        if relay is not None:
            metrics.record_relay(relay)
    except Exception:
        log.warning("order counters unavailable for /metrics")
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
