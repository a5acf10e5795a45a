"""The gateway an HTTP experiment (``via = "http"``) drives: deployed with each run's settings
on the experiment's Ray, and its replicas counted while the run lasts.

The simulator itself only speaks HTTP to a gateway (``http_target``); starting one is the
experiment runner's job, through the same ``serve_app.serving`` functions ``marketplace up``
uses, so this module is the one place under ``marketplace.sim`` allowed to import the gateway
(the import-linter contract names it).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence

from marketplace.config import Settings
from serve_app.serving import APP_NAME, choose_ingress, start_gateway, stop_gateway

GATEWAY_DEPLOYMENT = "Gateway"


# A run's gateway has no client but the run, which has ended when the gateway is removed: Serve's
# default 30 s of draining each replica (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, read when
# Serve starts) only made every HTTP point 30 s longer.
DRAINING_PERIOD_S = "2"


def prepare_ingress(settings: Settings) -> str:
    """Choose Serve's ingress (HAProxy where installed) and a short draining period for the
    runs' gateways (unless the environment sets one); must run before Ray starts."""
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", DRAINING_PERIOD_S)
    return choose_ingress(settings)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for the experiment's gateway (the same for every run: Serve
    keeps the port it first started with)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def deploy(settings: Settings, *, first: bool) -> str:
    """Deploy the gateway for one run (blocking); returns its base URL.

    The first run starts Serve on ``settings.http_port``; later runs redeploy the application
    on the Serve (and the port) that the first one started.
    """
    if first:
        return start_gateway(settings)
    from ray import serve

    from serve_app.app import build_app

    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    return f"http://{settings.http_host}:{settings.http_port}"


def remove() -> None:
    """Remove the run's gateway application (blocking); Serve itself stays for the next run."""
    stop_gateway()


def running_replicas() -> int:
    """The gateway deployment's replicas in the RUNNING state (blocking: asks Serve's
    controller)."""
    from ray import serve

    application = serve.status().applications.get(APP_NAME)
    if application is None:
        return 0
    deployment = application.deployments.get(GATEWAY_DEPLOYMENT)
    if deployment is None:
        return 0
    # Keyed by Serve's ReplicaState, a string enum (private to Serve, so compared by value).
    return sum(
        count
        for state, count in deployment.replica_states.items()
        if getattr(state, "value", state) == "RUNNING"
    )


class ReplicaSampler:
    """Counts the gateway's running replicas every ``interval`` seconds from ``start()`` until
    ``stop()``; ``samples`` holds ``(seconds since start, replicas)``."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling on the running event loop (time 0 is now)."""
        began = time.monotonic()

        async def sample() -> None:
            while True:
                count = await asyncio.to_thread(running_replicas)
                self.samples.append((time.monotonic() - began, count))
                await asyncio.sleep(self.interval)

        self._task = asyncio.create_task(sample())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def replicas_at(samples: Sequence[tuple[float, int]], t: float) -> int | None:
    """The replica count last sampled at or before ``t`` (None before the first sample)."""
    found = None
    for when, count in samples:
        if when > t:
            break
        found = count
    return found
