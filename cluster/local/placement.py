"""Where things run: the nodes, the marketplace's actors and the Serve replicas, each with its
node, from the dashboard's state API; and the wait until they have settled after a change."""

from __future__ import annotations

import time
from typing import Any

from cluster.local.state import LocalCluster


def placement(cluster: LocalCluster) -> dict[str, Any]:
    """Nodes (with the worker each is) and the marketplace's actors with their node."""
    from ray.util.state import list_actors, list_nodes

    names = {}
    nodes = []
    for n in list_nodes(address=cluster.dashboard, timeout=15):
        label = (
            "head"
            if n.is_head_node
            else next(
                (w.name for w in cluster.workers() if w.resource in (n.resources_total or {})), "?"
            )
        )
        names[n.node_id] = label
        nodes.append({"node": label, "node_id": n.node_id, "state": n.state})
    namespace = cluster.env.get("MARKETPLACE_NAMESPACE", "marketplace")
    actors = [
        {
            "name": a.name,
            "class": a.class_name,
            "state": a.state,
            "node": names.get(a.node_id or "", "?"),
            "restarts": a.num_restarts,
        }
        for a in list_actors(
            address=cluster.dashboard,
            filters=[("ray_namespace", "=", namespace)],
            limit=10_000,
            detail=True,
            timeout=15,
        )
    ]
    replicas = [
        {"name": a.name, "state": a.state, "node": names.get(a.node_id or "", "?")}
        for a in list_actors(
            address=cluster.dashboard,
            filters=[("state", "=", "ALIVE")],
            limit=10_000,
            timeout=15,
        )
        if (a.class_name or "").startswith("ServeReplica:")
    ]
    return {"nodes": nodes, "actors": actors, "replicas": replicas}


def actor_names(cluster: LocalCluster) -> set[str]:
    """The names of the marketplace's actors (processes: each role's own, or in the colocated
    topology each cell) that the cluster's settings ask for."""
    from actors.directory import Directory
    from serve_app.deploy_config import settings_from_env

    return set(Directory(settings_from_env(cluster.env)).hosts())


def settled_placement(
    cluster: LocalCluster, *, avoid: str | None = None, timeout_s: float = 180
) -> dict[str, Any]:
    """``placement`` once every marketplace actor, a Gateway and an Auth replica are ALIVE on
    a known node other than ``avoid`` (the state API lags the cluster by a few seconds)."""
    wanted = actor_names(cluster)
    deadline = time.monotonic() + timeout_s
    while True:
        now = placement(cluster)
        alive = {
            a["name"]
            for a in now["actors"]
            if a["state"] == "ALIVE" and a["node"] not in ("?", avoid)
        }
        replicas = {
            r["name"].split("#")[1] for r in now["replicas"] if r["node"] not in ("?", avoid)
        }
        if alive >= wanted and replicas >= {"Gateway", "Auth"}:
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"actors or replicas not settled: {now}")
        time.sleep(1)
