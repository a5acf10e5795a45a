"""Rehearse the Kubernetes deployment on this machine: a head and N worker Ray nodes.

The same configuration as the cluster: an overlay is rendered with kustomize, its settings
ConfigMap becomes the environment of every Ray node (as the pods' ``envFrom``), the database is
prepared like the head pod's init container does (``serve_app.bootstrap``), and its
``serveConfigV2`` is deployed with ``serve deploy`` through the dashboard's REST API, the path
the KubeRay operator takes. Only what a single machine forces differs, and is said below.

    python -m cluster.local.rehearsal up        # start head + 2 workers, deploy, wait until ready
    python -m cluster.local.rehearsal smoke     # the smoke load scenario (load/cli.py) against it
    python -m cluster.local.rehearsal status    # nodes and where the marketplace's actors live
    python -m cluster.local.rehearsal kill-worker 1   # the failure drill: SIGKILL one worker node
    python -m cluster.local.rehearsal down      # stop every process it started, drop its database
    python -m cluster.local.rehearsal rehearse  # up, smoke, down

What differs from Kubernetes, because every node shares one machine:
- each node has its own ``--temp-dir`` and explicit free ports (GCS, dashboard, agents), and is
  started as its own process group, so one node can be killed without touching the others;
- the HTTP port is a free one on 127.0.0.1 (``http_options`` of the deployed config; the
  applications are deployed unchanged), and each worker's Serve proxy gets a port of its own
  (``RAY_SERVE_WORKER_PROXY_HTTP_PORT``: HAProxy cannot share one port between nodes); clients
  use the head's, as the Kubernetes Service would use any pod's;
- token authentication is off (``RAY_AUTH_MODE=disabled``): the nodes listen on this machine's
  own addresses only;
- the database is a fresh PostgreSQL database on 127.0.0.1:5432 (dropped by ``down``), or
  ``--database-url``; no RabbitMQ (events wait in the outbox, as without a broker);
- the GCS notices a dead node after about 6 s instead of 15 s (health checks every 2 s, 3 misses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from cluster.manifests import render, serve_config_v2, settings_env

PG_ADMIN_URL = os.environ.get(
    "MARKETPLACE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STATE_POINTER = Path(".marketplace") / "local-cluster.json"
ADMIN_EMAIL = "admin@rehearsal.local"
WORKER_RESOURCE = "rehearsal_worker_{}"
# Faster detection of a dead node than Ray's default (3 s x 5), still tolerant of a busy machine.
HEAD_ENV = {"RAY_health_check_period_ms": "2000", "RAY_health_check_failure_threshold": "3"}


@dataclass
class NodeInfo:
    """One Ray node: the ``ray start --block`` process that owns it, and its temp dir."""

    name: str
    pid: int
    temp_dir: str
    log: str
    resource: str | None = None
    proxy_port: int | None = None


@dataclass
class LocalCluster:
    """What ``up`` started; saved as ``state.json`` in ``base`` so ``down`` can undo it."""

    base: str
    overlay: str
    gcs_port: int
    dashboard_port: int
    http_port: int
    database_url: str
    created_database: bool
    admin_email: str
    admin_password: str
    env: dict[str, str]
    nodes: list[NodeInfo] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def workers(self) -> list[NodeInfo]:
        return [node for node in self.nodes if node.resource]

    def save(self) -> Path:
        path = Path(self.base) / "state.json"
        path.touch(mode=0o600)  # it holds the rehearsal's stand-in secrets
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> LocalCluster:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["nodes"] = [NodeInfo(**node) for node in data["nodes"]]
        return cls(**data)


def log(message: str) -> None:
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on this machine right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tool(name: str) -> str:
    """An executable of this interpreter's environment (ray, serve), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


# -- the database -----------------------------------------------------------------------------


async def _pg(admin_url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_database(admin_url: str = PG_ADMIN_URL) -> str:
    """A fresh, empty PostgreSQL database; its URL."""
    name = "mkt_rehearsal_" + uuid.uuid4().hex[:10]
    asyncio.run(_pg(admin_url, f'CREATE DATABASE "{name}"'))
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- processes --------------------------------------------------------------------------------


def kill_tree(*pids: int, graceful_s: float = 0.0) -> int:
    """Signal processes, everything under them and their process groups (each node runs in a
    session of its own, which also holds what was re-parented to init); returns how many.

    With ``graceful_s`` they get SIGTERM first and that long to exit, then SIGKILL.
    """
    import psutil

    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in (root, *root.children(recursive=True)):
                procs[proc.pid] = proc
    groups = set(pids)
    for proc in psutil.process_iter():
        if proc.pid not in procs and _pgid(proc.pid) in groups:
            procs[proc.pid] = proc
    remaining = list(procs.values())
    if graceful_s > 0:
        for proc in remaining:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, remaining = psutil.wait_procs(remaining, timeout=graceful_s)
    for proc in remaining:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(remaining, timeout=10)
    return len(procs)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


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
    stats, haproxy_metrics = free_ports(2)
    node_env = env | extra_env
    node_env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(stats)
    node_env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(haproxy_metrics)
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


# -- up, deploy, down -------------------------------------------------------------------------


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


def node_environment(cluster: LocalCluster) -> dict[str, str]:
    """This process's environment without its MARKETPLACE_* settings (a pod has only the
    overlay's), plus the cluster's."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MARKETPLACE_") and key != "RAY_ADDRESS"
    }
    return inherited | cluster.env


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


def prepare_database(cluster: LocalCluster) -> None:
    """Migrate and ensure the admin, as the head pod's init container does."""
    log("preparing the database (python -m serve_app.bootstrap)")
    subprocess.run(
        [sys.executable, "-m", "serve_app.bootstrap", "--wait", "60"],
        env=node_environment(cluster),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=180,
    )


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


def deploy(cluster: LocalCluster, config: dict[str, Any], timeout_s: float = 420) -> None:
    """``serve deploy`` through the dashboard, then wait until ``/v1/ready`` answers 200."""
    path = deploy_file(cluster, config)
    log(f"serve deploy {path} --address {cluster.dashboard}")
    subprocess.run(
        [tool("serve"), "deploy", str(path), "--address", cluster.dashboard],
        env=node_environment(cluster),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=180,
    )
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


def smoke(cluster: LocalCluster, duration_s: float | None = None) -> int:
    """The smoke scenario (``python -m load.cli``): exit 0 when its SLOs and the audit pass."""
    report = Path(cluster.base) / "reports" / f"smoke-{int(time.time())}"
    command = [
        sys.executable,
        "-m",
        "load.cli",
        "--scenario",
        "smoke",
        "--host",
        cluster.url,
        "--manifest",
        "none",
        "--report-dir",
        str(report),
        "--admin-email",
        cluster.admin_email,
        "--admin-password",
        cluster.admin_password,
        "--quiet",
    ]
    if duration_s is not None:
        command += ["--duration", str(duration_s)]
    log("smoke load: " + " ".join(command[2:]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLACE_")}
    done = subprocess.run(command, env=env, check=False, timeout=600)
    log(f"smoke load exit {done.returncode}; report {report}")
    return done.returncode


def kill_worker(cluster: LocalCluster, index: int) -> int:
    """The failure drill: SIGKILL every process of worker ``index`` (raylet, its actors and
    replicas, its proxy). Returns how many processes were killed."""
    node = next(n for n in cluster.workers() if n.name == f"worker{index}")
    killed = kill_tree(node.pid)
    log(f"killed worker{index}: {killed} processes")
    return killed


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
    """The names of the marketplace's actors that the cluster's settings ask for."""
    from actors.directory import Directory
    from serve_app.deploy_config import settings_from_env

    return set(Directory(settings_from_env(cluster.env)).all_names())


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


# -- the command ------------------------------------------------------------------------------


def _load_pointer() -> LocalCluster:
    if not STATE_POINTER.exists():
        raise SystemExit("no local cluster recorded here (.marketplace/local-cluster.json)")
    state = Path(json.loads(STATE_POINTER.read_text(encoding="utf-8"))["state"])
    return LocalCluster.load(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.local.rehearsal",
        description="A head and worker Ray nodes on this machine, deployed like the cluster.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "rehearse"):
        sub = commands.add_parser(name)
        sub.add_argument("--overlay", default="dev", choices=("dev", "prod"))
        sub.add_argument("--workers", type=int, default=2)
        sub.add_argument("--worker-cpus", type=int, default=2)
        sub.add_argument("--database-url", help="default: a fresh database on 127.0.0.1:5432")
        if name == "rehearse":
            sub.add_argument("--duration", type=float, help="smoke duration override (s)")
    smoke_parser = commands.add_parser("smoke")
    smoke_parser.add_argument("--duration", type=float)
    commands.add_parser("status")
    kill = commands.add_parser("kill-worker")
    kill.add_argument("index", type=int)
    commands.add_parser("down")
    args = parser.parse_args(argv)

    if args.command in ("up", "rehearse"):
        cluster = up(args.overlay, args.workers, args.worker_cpus, args.database_url)
        if args.command == "rehearse":
            try:
                return smoke(cluster, args.duration)
            finally:
                down(cluster)
        STATE_POINTER.parent.mkdir(parents=True, exist_ok=True)
        STATE_POINTER.write_text(
            json.dumps({"state": str(Path(cluster.base) / "state.json")}) + "\n", encoding="utf-8"
        )
        print(
            f"marketplace: {cluster.url}\ndashboard:   {cluster.dashboard}\n"
            f"admin:       {cluster.admin_email} / {cluster.admin_password}\n"
            f"Ray address: {cluster.gcs_address}\n"
            "stop with:   python -m cluster.local.rehearsal down"
        )
        return 0
    cluster = _load_pointer()
    if args.command == "smoke":
        return smoke(cluster, args.duration)
    if args.command == "status":
        print(json.dumps(placement(cluster), indent=2))
        return 0
    if args.command == "kill-worker":
        kill_worker(cluster, args.index)
        return 0
    down(cluster)
    STATE_POINTER.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM unwinds like Ctrl-C
    raise SystemExit(main())
