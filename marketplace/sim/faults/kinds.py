"""The kinds of fault a plan may hold, as pydantic models (one per ``kind``).

Every fault says when it happens (``at`` a time, or ``every`` so many seconds on average,
drawn from the plan's seed), how long it applies (``duration``; a kill is instantaneous) and
how long to wait, once it is lifted, for its target to answer again (``heal_timeout``): that
wait is the fault's end condition. The rest of the fields say what it hits.

Pure data: nothing here touches Ray or a service (``marketplace.sim.faults.injectors`` does).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

ActorKind = Literal[
    "catalog",
    "inventory",
    "carts",
    "payments",
    "shipments",
    "sellers",
    "orders",
    "relay",
    "inbound",
    "replicas",
]
"""Actors a fault may kill or cut off (``relay`` and ``inbound`` exist with a broker only,
``replicas``, the catalog's read replicas, with ``catalog_replicas`` > 0)."""

Caller = Literal["client", "gateway", ActorKind]
"""Who makes the calls a ``calls`` fault delays or loses: the driver's client (the simulator
in process), the gateway's replicas, or the actors of one kind."""

ACTOR_KINDS: tuple[str, ...] = get_args(ActorKind)
CALLERS: tuple[str, ...] = get_args(Caller)


class FaultBase(BaseModel):
    """When a fault happens, how long it applies, and how long its target may take to heal."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    at: float | None = Field(default=None, ge=0, description="seconds from the run's start")
    every: float | None = Field(
        default=None, gt=0, description="mean seconds between occurrences (Poisson)"
    )
    window: tuple[float, float] | None = Field(
        default=None, description="with every: [from, to] seconds (default the whole run)"
    )
    duration: float = Field(default=0.0, ge=0, description="seconds the fault applies")
    heal_timeout: float = Field(
        default=30.0, gt=0, description="seconds to wait, once lifted, for the target to answer"
    )

    @model_validator(mode="after")
    def _one_time(self) -> FaultBase:
        if (self.at is None) == (self.every is None):
            raise ValueError("give exactly one of at (seconds) or every (mean seconds)")
        if self.window is not None:
            if self.every is None:
                raise ValueError("window goes with every")
            if not 0 <= self.window[0] < self.window[1]:
                raise ValueError("window must be [from, to] with 0 <= from < to")
        if self.windowed and self.duration <= 0:
            raise ValueError(f"a {self.describe_kind()} fault needs duration > 0")
        return self

    @property
    def windowed(self) -> bool:
        """Whether the fault applies for a while (False: it happens once, a kill)."""
        return True

    def describe_kind(self) -> str:
        """The ``kind`` value."""
        return str(getattr(self, "kind", type(self).__name__))


class KillActor(FaultBase):
    """Kill an actor (Ray restarts it; it reloads its state from the store, a catalog read
    replica from its shard)."""

    kind: Literal["kill_actor"]
    actor: ActorKind
    index: int | None = Field(default=None, ge=0, description="default: a random one")

    @property
    def windowed(self) -> bool:
        return False


class KillReplica(FaultBase):
    """Kill a Serve replica of the gateway (Serve starts another); needs the HTTP target."""

    kind: Literal["kill_replica"]
    deployment: str = Field(default="Gateway", description="the Serve deployment's name")

    @property
    def windowed(self) -> bool:
        return False


class KillNode(FaultBase):
    """Kill a worker node of the local rehearsal cluster (``python -m cluster.local.rehearsal
    up``): every process of it, as a lost machine. Ray restarts its actors on the nodes left;
    the fault has healed when every marketplace actor runs again elsewhere."""

    kind: Literal["kill_node"]
    node: int | None = Field(
        default=None, ge=1, description="the worker's number (worker1, ...); default a random one"
    )
    # Ray declares a node dead only after its health checks fail (about 6 s in the rehearsal),
    # and a whole node's actors then restart side by side on a small machine.
    heal_timeout: float = Field(
        default=240.0, gt=0, description="seconds to wait, once lifted, for the target to answer"
    )

    @property
    def windowed(self) -> bool:
        return False


class SqliteLock(FaultBase):
    """Hold SQLite's write lock (another process in a long transaction): writers wait."""

    kind: Literal["sqlite_lock"]


class Postgres(FaultBase):
    """Stop the local PostgreSQL for ``duration`` seconds, or restart it (fast shutdown)."""

    kind: Literal["postgres"]
    action: Literal["stop", "restart"] = "stop"

    @property
    def windowed(self) -> bool:
        return self.action == "stop"


class RabbitMQ(FaultBase):
    """Stop the local RabbitMQ broker's application for ``duration`` seconds."""

    kind: Literal["rabbitmq"]


class Payments(FaultBase):
    """Make the card network slow (``latency_ms`` more per call) and failing (``error_rate``
    of calls fail transiently) in every payment processor."""

    kind: Literal["payments"]
    latency_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _does_something(self) -> Payments:
        if not self.latency_ms and not self.error_rate:
            raise ValueError("a payments fault needs latency_ms > 0 or error_rate > 0")
        return self


class Calls(FaultBase):
    """Delay and lose the calls that ``from`` (the in-process client, or the actors of one
    kind) makes to the actors of kind ``to``, in the call layer, seeded."""

    kind: Literal["calls"]
    source: Caller = Field(alias="from")
    target: ActorKind = Field(alias="to")
    delay_ms: float = Field(default=0.0, ge=0)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    lose: Literal["request", "reply"] = Field(
        default="request", description="lose the call before it arrives, or its answer after"
    )

    @model_validator(mode="after")
    def _does_something(self) -> Calls:
        if not self.delay_ms and not self.drop_rate:
            raise ValueError("a calls fault needs delay_ms > 0 or drop_rate > 0")
        return self


Fault = Annotated[
    KillActor | KillReplica | KillNode | SqliteLock | Postgres | RabbitMQ | Payments | Calls,
    Field(discriminator="kind"),
]

KINDS: dict[str, type[FaultBase]] = {
    "kill_actor": KillActor,
    "kill_replica": KillReplica,
    "kill_node": KillNode,
    "sqlite_lock": SqliteLock,
    "postgres": Postgres,
    "rabbitmq": RabbitMQ,
    "payments": Payments,
    "calls": Calls,
}
"""Every kind, by its ``kind`` value (``marketplace faults list`` prints them)."""
