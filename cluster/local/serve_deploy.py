"""The overlay's ``serveConfigV2`` deployed through the dashboard's REST API (``PUT
/api/serve/applications/``, the request both ``serve deploy`` and the KubeRay operator send),
and the wait until the marketplace is ready."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from cluster.local.processes import log
from cluster.local.state import LocalCluster


def deploy_file(cluster: LocalCluster, config: dict[str, Any]) -> Path:
    """The serve deploy file: the overlay's serveConfigV2, listening where this machine can."""
    local = dict(config)
    local["http_options"] = dict(config.get("http_options") or {}) | {
        "host": "127.0.0.1",
        "port": cluster.http_port,
    }
    path = Path(cluster.base) / "serve-config.yaml"
    path.write_text(yaml.safe_dump(local, sort_keys=False), encoding="utf-8")
    return path


DEPLOY_PATH = "/api/serve/applications/"


def submit(cluster: LocalCluster, config: dict[str, Any]) -> None:
    """The deploy request to the dashboard: returns once Serve has taken the config (the
    application then deploys, or rolls, in the background); RuntimeError if it is refused.

    Sent directly rather than through ``serve deploy``, whose process spent 6-9 s of a 2-core
    machine importing Ray to send this one request; the file stays for a person to read or to
    deploy again by hand (``serve deploy FILE --address DASHBOARD``).
    """
    path = deploy_file(cluster, config)
    log(f"PUT {cluster.dashboard}{DEPLOY_PATH} ({path})")
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    reply = httpx.put(f"{cluster.dashboard}{DEPLOY_PATH}", json=body, timeout=180)
    if reply.status_code != 200:
        raise RuntimeError(f"Serve refused the config ({reply.status_code}): {reply.text[:2000]}")


def deploy(cluster: LocalCluster, config: dict[str, Any], timeout_s: float = 420) -> None:
    """The config deployed through the dashboard, then the wait until ``/v1/ready`` answers
    200."""
    submit(cluster, config)
    wait_ready(cluster, timeout_s)
    log(f"ready at {cluster.url} (dashboard {cluster.dashboard})")


def wait_ready(cluster: LocalCluster, timeout_s: float) -> float:
    """Seconds until ``GET /v1/ready`` answered 200; TimeoutError after ``timeout_s``."""
    began = time.monotonic()
    last = "no answer"
    while time.monotonic() - began < timeout_s:
        try:
            reply = httpx.get(f"{cluster.url}/v1/ready", timeout=10)
            if reply.status_code == 200:
                return time.monotonic() - began
            last = f"{reply.status_code} {reply.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(2)
    raise TimeoutError(f"{cluster.url}/v1/ready not ready after {timeout_s:.0f} s: {last}")
