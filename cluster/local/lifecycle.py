"""The whole local cluster started in order (database, nodes, Serve deploy) and stopped again."""

from __future__ import annotations

import secrets
import shutil
import uuid
from pathlib import Path

from cluster.local.database import create_database, drop_database, prepare_database
from cluster.local.environment import ADMIN_EMAIL, cluster_env
from cluster.local.nodes import start_nodes
from cluster.local.processes import free_ports, kill_tree, log
from cluster.local.serve_deploy import deploy
from cluster.local.state import LocalCluster
from cluster.manifests import render, serve_config_v2, settings_env


def up(
    overlay: str = "dev",
    workers: int = 2,
    worker_cpus: int = 2,
    database_url: str | None = None,
    base: Path | None = None,
    extra_env: dict[str, str] | None = None,
    deploy_timeout_s: float = 420,
) -> LocalCluster:
    """Start the nodes and deploy the overlay's serveConfigV2; returns once /v1/ready answers.

    On failure everything started so far is stopped again.
    """
    objects = render(overlay)
    overlay_env = settings_env(objects)
    config = serve_config_v2(objects)
    base = base or Path(f"/tmp/mktrh-{uuid.uuid4().hex[:8]}")  # short: Unix socket paths
    base.mkdir(parents=True, exist_ok=True)
    created = database_url is None
    url = database_url or create_database()
    gcs, dashboard, http = free_ports(3)
    cluster = LocalCluster(
        base=str(base),
        overlay=overlay,
        gcs_port=gcs,
        dashboard_port=dashboard,
        http_port=http,
        database_url=url,
        created_database=created,
        admin_email=ADMIN_EMAIL,
        admin_password="rehearsal-" + secrets.token_hex(8),
        env={},
    )
    cluster.env = cluster_env(overlay_env, url, cluster.admin_password, http, base)
    cluster.env |= extra_env or {}
    cluster.save()
    try:
        log(f"{overlay} overlay; base {base}; database {url.rsplit('/', 1)[1]}")
        prepare_database(cluster)
        start_nodes(cluster, workers, worker_cpus)
        deploy(cluster, config, timeout_s=deploy_timeout_s)
    except BaseException:
        log(f"start failed; stopping what was started (logs kept in {base})")
        down(cluster, keep_logs=True)
        raise
    return cluster


def down(cluster: LocalCluster, *, keep_logs: bool = False) -> None:
    """Stop every node, drop the database ``up`` created, remove the files (unless
    ``keep_logs``: then the nodes' logs stay for a post-mortem)."""
    kill_tree(*(node.pid for node in cluster.nodes), graceful_s=5)
    cluster.nodes.clear()
    if cluster.created_database:
        try:
            drop_database(cluster.database_url)
        except Exception as exc:
            log(f"dropping the database failed: {exc!r}")
    if not keep_logs:
        shutil.rmtree(cluster.base, ignore_errors=True)
    log("down")
