"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serve_app import metrics, problems
from serve_app.deps import Client

log = logging.getLogger("marketplace.gateway")
router = APIRouter(tags=["operations"])


@router.get("/v1/health")
async def health() -> dict[str, str]:
    """Cheap liveness: answers without touching an actor."""
    return {"status": "ok"}


@router.get("/v1/ready")
async def ready(client: Client) -> Response:
    """Readiness: every actor answers."""
    try:
        actors = await asyncio.wait_for(client.ready(), 5)
    except Exception as exc:
        # The cause stays in the log: a Ray error's text names hosts, pids and code.
        log.warning("readiness: actors not ready: %r", exc)
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return problems.problem(503, f"actors not ready ({reason})", code="not_ready")
    return Response(
        content=f'{{"status":"ready","actors":{len(actors)}}}', media_type="application/json"
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(client: Client) -> Response:
    """Prometheus text: request counts and latency per route, business counters."""
    try:
        stats = await asyncio.wait_for(client.order_stats(), 2)
        metrics.record_order_counters(stats)
        relay = await asyncio.wait_for(client.relay_stats(), 2)
        if relay is not None:
            metrics.record_relay(relay)
    except Exception:
        log.warning("order counters unavailable for /metrics")
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
