"""Ray nodes on this machine: the head and the workers started with ``ray start --block``, each
in its own process group with its own temp dir and ports, waited for until they registered, and
killed one at a time for the failure drill."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from cluster.local.environment import node_environment
from cluster.local.processes import free_ports, kill_tree, log, tool
from cluster.local.state import LocalCluster, NodeInfo

WORKER_RESOURCE = "rehearsal_worker_{}"
# Faster detection of a dead node than Ray's default (3 s x 5), still tolerant of a busy machine.
HEAD_ENV = {"RAY_health_check_period_ms": "2000", "RAY_health_check_failure_threshold": "3"}


def _start_node(
    name: str, args: list[str], env: dict[str, str], base: Path, extra_env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], NodeInfo]:
    temp_dir = base / name
    temp_dir.mkdir(parents=True, exist_ok=True)
    log_path = base / f"{name}.log"
    agent, agent_grpc, metrics, runtime_env, node_manager, object_manager = free_ports(6)
    command = [
        tool("ray"),
        "start",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--node-manager-port={node_manager}",
        f"--object-manager-port={object_manager}",
        *args,
    ]
    # Each node's listeners beside HAProxy on ports of their own (serve_app.serving's
    # HAPROXY_PORT_SETTINGS says why): the nodes share this machine, and maybe a Serve besides.
    stats, haproxy_metrics, fallback_http, fallback_grpc = free_ports(4)
    node_env = env | extra_env
    node_env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(stats)
    node_env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(haproxy_metrics)
    node_env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] = str(fallback_http)
    node_env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] = str(fallback_grpc)
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=node_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process, NodeInfo(name=name, pid=process.pid, temp_dir=str(temp_dir), log=str(log_path))


def _tail(node: NodeInfo, lines: int = 15) -> str:
    """The end of a node's ``ray start`` log and, when it has one, its raylet's."""
    text = Path(node.log).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    raylet = sorted(Path(node.temp_dir).glob("session_*/logs/raylet.out"))
    fatal = []
    if raylet:
        fatal = [
            line[:400]
            for line in raylet[-1].read_text(encoding="utf-8", errors="replace").splitlines()
            if " C " in line[:40] or "Check failed" in line
        ]
    return f"see {node.log}\n" + "\n".join(text + fatal)


def alive_nodes(dashboard: str) -> list[dict[str, Any]]:
    """The ALIVE nodes, from the dashboard's state API."""
    from ray.util.state import list_nodes

    nodes = list_nodes(address=dashboard, filters=[("state", "=", "ALIVE")], timeout=10)
    return [
        {
            "node_id": n.node_id,
            "resources": dict(n.resources_total or {}),
            "is_head": n.is_head_node,
        }
        for n in nodes
    ]


def _wait_for_node(
    process: subprocess.Popen[bytes], dashboard: str, resource: str | None, timeout_s: float
) -> bool:
    """Until the node is ALIVE in the cluster (True), or its process ended or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            nodes = alive_nodes(dashboard)
        except Exception:
            nodes = []
        if any((resource in node["resources"]) if resource else node["is_head"] for node in nodes):
            return True
        time.sleep(1)
    return False


def start_nodes(cluster: LocalCluster, workers: int, worker_cpus: int) -> None:
    """The head (no CPUs, as in the manifests), then each worker, one at a time."""
    env = node_environment(cluster)
    client_port = free_ports(1)[0]
    head_args = [
        "--head",
        f"--port={cluster.gcs_port}",
        "--num-cpus=0",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={cluster.dashboard_port}",
        f"--ray-client-server-port={client_port}",
    ]
    _start_with_retries(cluster, "head", head_args, env, HEAD_ENV, None, 180)
    log(f"head node up (GCS :{cluster.gcs_port})")
    for index in range(1, workers + 1):
        resource = WORKER_RESOURCE.format(index)
        proxy_port = free_ports(1)[0]
        args = [
            f"--address={cluster.gcs_address}",
            f"--num-cpus={worker_cpus}",
            f"--resources={json.dumps({resource: 1})}",
        ]
        extra = {"RAY_SERVE_WORKER_PROXY_HTTP_PORT": str(proxy_port)}
        node = _start_with_retries(cluster, f"worker{index}", args, env, extra, resource, 120)
        node.proxy_port = proxy_port
        cluster.save()
    cluster.save()


def _start_with_retries(
    cluster: LocalCluster,
    name: str,
    args: list[str],
    env: dict[str, str],
    extra: dict[str, str],
    resource: str | None,
    timeout_s: float,
    attempts: int = 3,
) -> NodeInfo:
    """Start one node and wait until it has registered, retrying a few times.

    Ray gives a joining node 30 s to register; on a busy machine that can run out.
    """
    for attempt in range(1, attempts + 1):
        process, node = _start_node(name, args, env, Path(cluster.base), extra)
        node.resource = resource
        cluster.nodes.append(node)
        cluster.save()
        log(f"{name} starting (pid {node.pid})")
        if _wait_for_node(process, cluster.dashboard, resource, timeout_s):
            return node
        kill_tree(node.pid)
        cluster.nodes.remove(node)
        if attempt == attempts:
            raise RuntimeError(f"{name} did not start: {_tail(node)}")
        log(f"{name} did not register; retrying")
    raise AssertionError("unreachable")


def kill_worker(cluster: LocalCluster, index: int) -> int:
    """The failure drill: SIGKILL every process of worker ``index`` (raylet, its actors and
    replicas, its proxy). Returns how many processes were killed."""
    node = next(n for n in cluster.workers() if n.name == f"worker{index}")
    killed = kill_tree(node.pid)
    log(f"killed worker{index}: {killed} processes")
    return killed
