"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from async_lru import alru_cache
from fastapi import APIRouter, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from actors import scrape
from actors.client import MarketplaceClient
from serve_app import problems
from serve_app.deps import Client, ThisReplica

log = logging.getLogger("marketplace.gateway")
router = APIRouter(tags=["operations"])

# Both endpoints answer anyone and each answer asks every actor (or every node's metrics
# export), so a flood of them would be a flood of calls. Within these windows a replica answers
# from the last figures, and requests that arrive while they are being fetched wait for that one
# fetch (async-lru shares it); a failed fetch is not kept. Probes and scrapes come every few
# seconds at most.
READY_TTL_S = 1.0
SCRAPE_TTL_S = 2.0


@alru_cache(maxsize=2, ttl=READY_TTL_S)
async def actors_ready(client: MarketplaceClient) -> int:
    """How many actors answered ``ready`` (at most one fetch per ``READY_TTL_S``)."""
    return len(await asyncio.wait_for(client.ready(), 5))


@alru_cache(maxsize=2, ttl=SCRAPE_TTL_S)
async def marketplace_metrics(namespace: str) -> bytes:
    """Every Ray node's export of ``namespace``'s metrics, summed over processes (one scrape of
    the nodes per ``SCRAPE_TTL_S``)."""
    return await asyncio.wait_for(scrape.cluster_metrics(namespace), 5)


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
async def prometheus(replica: ThisReplica) -> Response:
    """Prometheus text: the marketplace's figures (requests and latency per route, checkouts,
    actor calls, commits, saga steps, order and relay counters), each summed over every
    process of the cluster, so any replica answers the same totals. Recorded figures reach a
    node's export every few seconds (Ray's ``metrics_report_interval_ms``)."""
    try:
        text = await marketplace_metrics(replica.settings.namespace)
    except Exception as exc:
        log.warning("metrics unavailable: %r", exc)
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return problems.problem(503, f"metrics unavailable ({reason})", code="not_ready")
    return Response(text, media_type=CONTENT_TYPE_LATEST)
