"""Doing each kind of fault to a running marketplace, lifting it, and probing its target.

An ``Injector`` applies one scheduled fault, lifts it, and says whether its target answers
again. ``check_targets`` refuses, before a run starts, a plan whose faults have nothing to hit
here (PostgreSQL stopped where the marketplace runs on SQLite, a broker not configured, a Serve
replica with no gateway). Kills go through Ray, card and call faults through the actors'
``inject_fault`` (``actors.faults``), PostgreSQL through ``pg_ctlcluster`` and RabbitMQ through
``rabbitmqctl`` on this machine: a fault plan stops services only where they run locally. A
node is killed only on the local rehearsal cluster (``cluster.local``), the one whose GCS the
driver joined, found through ``.marketplace/local-cluster.json`` as its other commands find it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url

from actors.faults import FAULTS, fault_from
from marketplace.sim.faults.kinds import (
    Calls,
    KillActor,
    KillNode,
    KillReplica,
    Payments,
    Postgres,
    RabbitMQ,
    SqliteLock,
)
from marketplace.sim.faults.plan import PlanError, Schedule, ScheduledFault

if TYPE_CHECKING:
    from actors.directory import Directory
    from cluster.local.state import LocalCluster
    from marketplace.config import Settings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}
PROBE_TIMEOUT_S = 2.0
INJECT_TIMEOUT_S = 2.0
SERVE_NAMESPACE = "serve"


@dataclass
class FaultContext:
    """What faults act on: the runtime's settings and directory, and how the load reaches it
    (``client``: this process calls the actors; ``http``: through the gateway)."""

    settings: Settings
    directory: Directory
    via: str = "client"


class Injector(Protocol):
    """One scheduled fault, made real."""

    async def apply(self) -> None:
        """Start the fault."""

    async def lift(self) -> None:
        """End it (a no-op for a kill)."""

    async def healthy(self) -> bool:
        """Whether the fault's target answers now."""


def check_targets(schedule: Schedule, context: FaultContext) -> None:
    """Raise ``PlanError`` naming the first fault with nothing to act on here."""
    settings = context.settings
    url = make_url(settings.resolved_database_url())
    for scheduled in _distinct(schedule.faults):
        fault = scheduled.fault
        where = f"fault {scheduled.id} ({scheduled.kind})"
        match fault:
            case KillActor(actor="relay" | "inbound") if not settings.amqp_url:
                raise PlanError(f"{where}: no {fault.actor} actor runs without a broker")
            case Calls(target="relay" | "inbound") if not settings.amqp_url:
                raise PlanError(f"{where}: no {fault.target} actor runs without a broker")
            case (
                KillActor(actor="replicas") | Calls(source="replicas") | Calls(target="replicas")
            ) if not settings.catalog_replicas:
                raise PlanError(
                    f"{where}: no catalog read replica runs (MARKETPLACE_CATALOG_REPLICAS is 0)"
                )
            case Calls(source="client") if context.via != "client":
                raise PlanError(f"{where}: from = 'client' needs the in-process client target")
            case Calls(source="gateway"):
                raise PlanError(f"{where}: faults on the gateway's calls are not supported yet")
            case KillReplica() if context.via != "http":
                raise PlanError(f"{where}: killing a gateway replica needs --via http")
            case KillNode():
                cluster = rehearsal_cluster(settings, where)
                alive = [node.name for node in _live_workers(cluster)]
                if len(alive) < 2:
                    raise PlanError(
                        f"{where}: the local cluster has {len(alive)} live worker node(s); killing "
                        "one needs another for its actors to move to"
                    )
                if fault.node is not None and f"worker{fault.node}" not in alive:
                    raise PlanError(
                        f"{where}: node = {fault.node}, but the live workers are {', '.join(alive)}"
                    )
            case SqliteLock():
                if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
                    raise PlanError(f"{where}: the marketplace does not run on a SQLite file")
            case Postgres():
                if url.get_backend_name() != "postgresql":
                    raise PlanError(f"{where}: the marketplace does not run on PostgreSQL")
                if (url.host or "") not in LOCAL_HOSTS:
                    raise PlanError(f"{where}: PostgreSQL at {url.host} is not on this machine")
                if not shutil.which("pg_ctlcluster"):
                    raise PlanError(f"{where}: pg_ctlcluster is not installed here")
            case RabbitMQ():
                if not settings.amqp_url:
                    raise PlanError(f"{where}: no broker configured (MARKETPLACE_AMQP_URL)")
                host = urlsplit(settings.amqp_url).hostname or ""
                if host not in LOCAL_HOSTS:
                    raise PlanError(f"{where}: RabbitMQ at {host} is not on this machine")
                if not shutil.which("rabbitmqctl"):
                    raise PlanError(f"{where}: rabbitmqctl is not installed here")


def rehearsal_cluster(settings: Settings, where: str = "kill_node") -> LocalCluster:
    """The local rehearsal cluster recorded in this working directory, when ``settings`` join
    its GCS; ``PlanError`` otherwise."""
    from cluster.local.state import STATE_POINTER, LocalCluster

    start = "python -m cluster.local.rehearsal up"
    if not STATE_POINTER.exists():
        raise PlanError(f"{where}: no local rehearsal cluster recorded here (start one: {start})")
    try:
        state = Path(json.loads(STATE_POINTER.read_text(encoding="utf-8"))["state"])
        cluster = LocalCluster.load(state)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanError(f"{where}: the local cluster's state is unreadable: {exc}") from None
    joined = (settings.ray_address or "").removeprefix("ray://")
    if joined != cluster.gcs_address:
        raise PlanError(
            f"{where}: the marketplace must run on the local rehearsal cluster: set "
            f"MARKETPLACE_RAY_ADDRESS={cluster.gcs_address} "
            f"(it is {settings.ray_address or 'unset'})"
        )
    return cluster


def _live_workers(cluster: LocalCluster) -> list[Any]:
    import psutil

    return [node for node in cluster.workers() if psutil.pid_exists(node.pid)]


def _distinct(faults: Sequence[ScheduledFault]) -> list[ScheduledFault]:
    seen: set[int] = set()
    unique = []
    for scheduled in faults:
        if id(scheduled.fault) not in seen:
            seen.add(id(scheduled.fault))
            unique.append(scheduled)
    return unique


def injector_for(scheduled: ScheduledFault, context: FaultContext) -> Injector:
    """The injector of one scheduled fault."""
    fault = scheduled.fault
    match fault:
        case KillActor():
            return _KillActor(context.directory, f"{fault.actor}-{scheduled.index}")
        case KillReplica():
            return _KillReplica(fault.deployment, scheduled.pick)
        case KillNode():
            cluster = rehearsal_cluster(context.settings)
            return _KillNode(cluster, context.directory, fault.node, scheduled.pick)
        case SqliteLock():
            database = make_url(context.settings.resolved_database_url()).database
            assert database
            return _SqliteLock(Path(database))
        case Postgres():
            return _Postgres(fault.action, make_url(context.settings.resolved_database_url()))
        case RabbitMQ():
            assert context.settings.amqp_url
            return _RabbitMQ(context.settings.amqp_url)
        case Payments():
            spec = {
                "type": "card",
                "latency_s": fault.latency_ms / 1000,
                "error_rate": fault.error_rate,
                "seed": scheduled.seed,
            }
            return _Inject(context.directory, "payments", scheduled.id, spec)
        case Calls():
            spec = {
                "type": "link",
                "target": fault.target,
                "delay_s": fault.delay_ms / 1000,
                "drop_rate": fault.drop_rate,
                "lose": fault.lose,
                "seed": scheduled.seed,
            }
            return _Inject(context.directory, fault.source, scheduled.id, spec)
    raise PlanError(f"no injector for {scheduled.kind}")


async def _answers(handle: Any) -> bool:
    try:
        await asyncio.wait_for(handle.ready.remote(), PROBE_TIMEOUT_S)
    except Exception:
        return False
    return True


async def _pid(handle: Any) -> int | None:
    try:
        answer = await asyncio.wait_for(handle.ready.remote(), PROBE_TIMEOUT_S)
    except Exception:
        return None
    pid = answer.get("pid") if isinstance(answer, dict) else None
    return pid if isinstance(pid, int) else None


@dataclass
class _KillActor:
    directory: Directory
    name: str
    pid: int | None = None

    async def apply(self) -> None:
        import ray

        handle = await asyncio.to_thread(self.directory.get, self.name)
        self.pid = await _pid(handle)
        # Killed as a crash is: Ray restarts it (max_restarts=-1) and it reloads the store.
        await asyncio.to_thread(ray.kill, handle, no_restart=False)

    async def lift(self) -> None:
        return None

    async def healthy(self) -> bool:
        # The kill takes effect asynchronously: only an answer from a new process counts.
        pid = await _pid(self.directory.get(self.name))
        return pid is not None and pid != self.pid


@dataclass
class _KillReplica:
    deployment: str
    pick: float
    before: int = 0

    async def apply(self) -> None:
        import ray

        names = await asyncio.to_thread(self._replicas)
        if not names:
            raise RuntimeError(f"no running replica of the Serve deployment {self.deployment}")
        self.before = len(names)
        victim = names[min(int(self.pick * len(names)), len(names) - 1)]
        handle = await asyncio.to_thread(ray.get_actor, victim, namespace=SERVE_NAMESPACE)
        await asyncio.to_thread(ray.kill, handle, no_restart=True)

    async def lift(self) -> None:
        return None

    async def healthy(self) -> bool:
        return await asyncio.to_thread(self._running) >= self.before

    def _replicas(self) -> list[str]:
        import ray

        return sorted(
            entry["name"]
            for entry in ray.util.list_named_actors(all_namespaces=True)
            if entry["namespace"] == SERVE_NAMESPACE
            and entry["name"].startswith("SERVE_REPLICA::")
            and f"#{self.deployment}#" in entry["name"]
        )

    def _running(self) -> int:
        from ray import serve
        from ray.serve._private.common import ReplicaState

        running = 0
        for app in serve.status().applications.values():
            deployment = app.deployments.get(self.deployment)
            if deployment is not None:
                running += deployment.replica_states.get(ReplicaState.RUNNING, 0)
        return running


@dataclass
class _KillNode:
    """SIGKILL every process of a worker node (as ``cluster.local.nodes.kill_worker``); healed
    once every marketplace actor is ALIVE on another node (from the dashboard's state API)."""

    cluster: LocalCluster
    directory: Directory
    node: int | None
    pick: float
    victim: str | None = None
    killed: int = 0  # processes

    async def apply(self) -> None:
        from cluster.local.processes import kill_tree

        alive = sorted(node.name for node in _live_workers(self.cluster))
        if self.node is not None:
            self.victim = f"worker{self.node}"
        elif alive:
            self.victim = alive[min(int(self.pick * len(alive)), len(alive) - 1)]
        if self.victim is None or self.victim not in alive:
            raise RuntimeError(f"no live worker node to kill (live: {alive})")
        node = next(n for n in self.cluster.workers() if n.name == self.victim)
        self.killed = await asyncio.to_thread(kill_tree, node.pid)

    async def lift(self) -> None:
        return None

    async def healthy(self) -> bool:
        # The processes: each role's own actor, or in the colocated topology each cell; and
        # the bridge's, when there is a broker.
        wanted = {*self.directory.hosts(), *self.directory.bridge_names()}
        try:
            actors = await asyncio.to_thread(self._actors_elsewhere)
        except Exception:  # the state API is slow or down while the cluster recovers
            return False
        return wanted <= actors

    def _actors_elsewhere(self) -> set[str]:
        from ray.util.state import list_actors, list_nodes

        victim = next(n for n in self.cluster.workers() if n.name == self.victim)
        victim_ids = {
            node.node_id
            for node in list_nodes(address=self.cluster.dashboard, timeout=15)
            if victim.resource in (node.resources_total or {})
        }
        actors = list_actors(
            address=self.cluster.dashboard,
            filters=[("ray_namespace", "=", self.directory.settings.namespace)],
            limit=10_000,
            timeout=15,
        )
        return {
            actor.name
            for actor in actors
            if actor.name
            and actor.state == "ALIVE"
            and actor.node_id
            and actor.node_id not in victim_ids
        }


@dataclass
class _SqliteLock:
    path: Path
    connection: sqlite3.Connection | None = None

    async def apply(self) -> None:
        def take() -> sqlite3.Connection:
            connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            connection.isolation_level = None
            connection.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held until lifted
            return connection

        self.connection = await asyncio.to_thread(take)

    async def lift(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await asyncio.to_thread(_rollback_and_close, connection)

    async def healthy(self) -> bool:
        def probe() -> bool:
            connection = sqlite3.connect(self.path, timeout=PROBE_TIMEOUT_S)
            try:
                connection.isolation_level = None
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
                return True
            except sqlite3.OperationalError:
                return False
            finally:
                connection.close()

        return await asyncio.to_thread(probe)


def _rollback_and_close(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def _pg_cluster() -> tuple[str, str]:
    versions = sorted(
        (p.name for p in Path("/etc/postgresql").iterdir() if (p / "main").is_dir()),
        key=lambda name: [int(x) for x in name.split(".") if x.isdigit()],
    )
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1], "main"


async def _run(*command: str, timeout_s: float = 120.0) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {output.decode(errors='replace')}")


@dataclass
class _Postgres:
    action: str
    url: URL
    stopped: bool = False

    async def apply(self) -> None:
        version, cluster = _pg_cluster()
        verb = "stop" if self.action == "stop" else "restart"
        self.stopped = verb == "stop"
        await _run(
            "pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, verb, "--", "-m", "fast"
        )

    async def lift(self) -> None:
        if self.stopped:
            version, cluster = _pg_cluster()
            await _run("pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start")
            self.stopped = False

    async def healthy(self) -> bool:
        import asyncpg

        url = self.url
        try:
            connection = await asyncio.wait_for(
                asyncpg.connect(
                    host=url.host or "127.0.0.1",
                    port=url.port or 5432,
                    user=url.username,
                    password=url.password,
                    database=url.database,
                ),
                PROBE_TIMEOUT_S,
            )
        except Exception:
            return False
        await connection.close()
        return True


@dataclass
class _RabbitMQ:
    url: str
    stopped: bool = False

    async def apply(self) -> None:
        self.stopped = True
        await _run("rabbitmqctl", "stop_app")

    async def lift(self) -> None:
        if self.stopped:
            await _run("rabbitmqctl", "start_app")
            await _run("rabbitmqctl", "await_startup")
            self.stopped = False

    async def healthy(self) -> bool:
        import aio_pika

        try:
            connection = await asyncio.wait_for(aio_pika.connect(self.url), PROBE_TIMEOUT_S)
        except Exception:
            return False
        await connection.close()
        return True


@dataclass
class _Inject:
    """A card or call fault, injected into every process of ``source`` (or this one)."""

    directory: Directory
    source: str
    fault_id: str
    spec: dict[str, Any]
    actors: list[Any] = dataclasses.field(default_factory=list)

    async def apply(self) -> None:
        await self._set(self.spec)

    async def lift(self) -> None:
        await self._set(None)

    async def healthy(self) -> bool:
        if self.source == "client":
            return True
        answers = await asyncio.gather(*(_answers(h) for h in self._handles()))
        return all(answers)

    def _handles(self) -> list[Any]:
        kind = next(k for k in self._kinds() if k.name == self.source)
        return [self.directory.get(name) for name in self.directory.names(kind)]

    def _kinds(self) -> list[Any]:
        from actors.directory import ALL_KINDS, BRIDGE_KINDS, REPLICAS

        return [*ALL_KINDS, *BRIDGE_KINDS, REPLICAS]

    async def _set(self, spec: dict[str, Any] | None) -> None:
        if self.source == "client":
            FAULTS.inject(self.fault_id, fault_from(spec))
            return
        handles = await asyncio.to_thread(self._handles)
        # An actor that is down (killed by another fault) misses the injection: the fault is
        # in force in the others, as a real partial failure would be.
        await asyncio.gather(
            *(asyncio.wait_for(h.inject_fault.remote(self.fault_id, spec), 10) for h in handles),
            return_exceptions=True,
        )
