"""The environment of every node: the overlay's settings ConfigMap (as the pods' ``envFrom``),
stand-ins for the Secret, and what sharing one machine needs."""

from __future__ import annotations

import os
import secrets
import shlex
from pathlib import Path

from cluster.local.state import LocalCluster

ADMIN_EMAIL = "admin@rehearsal.local"


def cluster_env(
    overlay_env: dict[str, str], database_url: str, admin_password: str, http_port: int, base: Path
) -> dict[str, str]:
    """What every node's environment adds to this one's: the overlay's ConfigMap, stand-ins for
    the Secret, and what one machine needs."""
    from serve_app.serving import haproxy_available

    haproxy = base / "haproxy"
    return overlay_env | {
        # marketplace-secrets
        "MARKETPLACE_DATABASE_URL": database_url,
        "MARKETPLACE_JWT_SECRET": secrets.token_hex(32),
        "MARKETPLACE_ADMIN_PASSWORD": admin_password,
        "MARKETPLACE_ADMIN_EMAIL": ADMIN_EMAIL,
        # where this machine's gateway listens (the deployed http_options say the same)
        "MARKETPLACE_HTTP_HOST": "127.0.0.1",
        "MARKETPLACE_HTTP_PORT": str(http_port),
        # Ray
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_SERVE_ENABLE_HA_PROXY": "1" if haproxy_available() else "0",
        # HAProxy's files under this cluster's folder, not the machine-wide /tmp/haproxy-serve
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
    }


def driver_exports(cluster: LocalCluster) -> str:
    """Shell ``export`` lines that make this machine's ``marketplace`` commands a driver of the
    cluster: its settings (the same actor counts, namespace, database and secrets, so they route
    as its gateway does) and its GCS address. ``eval "$(python -m cluster.local.rehearsal
    env)"``, then ``marketplace simulate --faults PLAN`` (a ``kill_node`` plan, say) runs there."""
    settings = {key: value for key, value in cluster.env.items() if key.startswith("MARKETPLACE_")}
    settings["MARKETPLACE_RAY_ADDRESS"] = cluster.gcs_address
    return "\n".join(
        f"export {key}={shlex.quote(value)}" for key, value in sorted(settings.items())
    )


def node_environment(cluster: LocalCluster) -> dict[str, str]:
    """This process's environment without its MARKETPLACE_* settings (a pod has only the
    overlay's), plus the cluster's."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MARKETPLACE_") and key != "RAY_ADDRESS"
    }
    return inherited | cluster.env
