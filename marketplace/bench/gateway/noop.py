"""The front door's baseline: a bare uvicorn + Starlette no-op, one process, started here.

The gateway's health answer goes through HAProxy, Serve's replica wrapper, FastAPI and the
marketplace's middlewares; this is the same ``GET /v1/health`` with none of them, so the ratio
between the two is what the stack costs (issue #23's goal: health at least 0.20x of it)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from marketplace.bench.gateway.config import MODULE, ROOT, BenchConfig, child_env, free_port
from marketplace.bench.gateway.driver import drive
from marketplace.bench.gateway.local_server import listening
from marketplace.bench.gateway.results import EndpointResult

HEALTH_OVER_NOOP_GOAL = 0.20


def noop_main(port: int) -> int:
    """Serve the no-op on ``port`` until killed (the subprocess's entry)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(_request: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/v1/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


def measure_noop(config: BenchConfig, workdir: Path, console: Console) -> EndpointResult | None:
    """The load generator's health requests against the no-op; None if it did not start."""
    port = free_port()
    argv = [sys.executable, "-m", MODULE, "--_noop", str(port)]
    with (
        (workdir / "noop.log").open("w", encoding="utf-8") as log,
        listening(argv, port, within_s=30, log=log, cwd=ROOT, env=child_env()) as up,
    ):
        if not up:
            console.print("no-op baseline: not measured (uvicorn did not start)")
            return None
        return drive(f"http://127.0.0.1:{port}", "health", None, config, config.ceiling_duration)
