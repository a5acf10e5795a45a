"""The ingress: the ``Gateway`` deployment, and ``build_api``, the FastAPI app assembled from
the routes of every resource (``serve_app/routes/``) around one replica's configuration.

Each replica builds its own app (``__serve_build_asgi_app__``) after ``__init__`` has started
its ``Replica``, so the routes and the middlewares are given the replica's configuration
rather than reading module globals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from marketplace.config import Settings
from serve_app import problems
from serve_app.body_limit import BodyLimit
from serve_app.fast_checkout import FastCheckouts
from serve_app.hot_reads import HeldProductReads
from serve_app.metrics import RequestMetrics
from serve_app.replica import Replica
from serve_app.routes import admin, carts, operations, orders, products, sellers, shipments, users
from serve_app.schemas import Problem
from serve_app.storable_params import RefuseUnstorableParams
from serve_app.tracing import TraceRequests

# Every error is a problem+json body (serve_app/problems.py). The schema is given inline under
# that media type: FastAPI's ``"model"`` key would document it under application/json instead,
# which the gateway never answers errors with. 400 is a body FastAPI cannot parse (invalid UTF-8,
# nesting too deep), 405 a method a path does not have, 503 an actor that is not reachable.
PROBLEM_SCHEMA: dict[str, Any] = {**Problem.model_json_schema(), "additionalProperties": True}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": problems.title(code),
        "content": {problems.PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
    }
    for code in (400, 401, 403, 404, 405, 409, 412, 413, 422, 429, 503)
}
# In the order Starlette tries them: the probes, then products (the hottest read first).
ROUTERS = (
    operations.router,
    products.router,
    admin.router,
    users.router,
    carts.router,
    orders.router,
    shipments.router,
    sellers.router,
)


def build_api(replica: Replica | None = None) -> FastAPI:
    """The HTTP API answered by ``replica``; without one, the API for its OpenAPI document
    alone (no request can be served by it)."""
    api = FastAPI(
        title="Marketplace",
        version="1.0.0",
        description="An actor-model marketplace. Money is in integer cents; ids are strings; "
        "errors are RFC 9457 problem details.",
        responses=ERRORS,
        # FastAPI's own OpenTelemetry (on whenever a tracer provider is set) would open a second
        # server span per request, continue any traceparent a client sends and meter requests
        # through OpenTelemetry: the gateway's span is serve_app.tracing's, metrics are Ray's.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    api.state.replica = replica
    problems.install(api)
    for router in ROUTERS:
        api.include_router(router)
    if replica is not None:
        # Innermost first: TraceRequests(RequestMetrics(BodyLimit(RefuseUnstorableParams(
        # HeldProductReads(FastCheckouts(FastAPI's own stack)))))).
        api.add_middleware(FastCheckouts, replica=replica)
        api.add_middleware(HeldProductReads, held=replica.client.held_product)
        api.add_middleware(RefuseUnstorableParams)
        api.add_middleware(BodyLimit, max_bytes=replica.settings.max_body_bytes)
        if replica.metrics.enabled:
            api.add_middleware(RequestMetrics, metrics=replica.metrics)
        if replica.settings.trace_sample > 0:
            api.add_middleware(TraceRequests)
    return api


@serve.deployment(name="Gateway")
@serve.ingress()
class Gateway:
    """The ingress deployment; its replicas share nothing but the actors and the store."""

    def __init__(
        self, settings: dict[str, Any], auth: DeploymentHandle[Any], limits: DeploymentHandle[Any]
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.replica = Replica.start(Settings.model_validate(settings), auth, limits)
        # Serve runs the constructor on the replica's event loop: the heartbeat starts with it,
        # so the others count this replica before it takes its first checkout.
        self.replica.live.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        """This replica's app: Serve calls it once, after ``__init__``."""
        return build_api(self.replica)
