"""Fault plans: TOML in, a validated ``FaultPlan`` out, and its seeded schedule.

A plan file::

    name = "kills"
    description = "An inventory partition, then a coordinator, die under load."
    seed = 3                      # optional: default the run's seed

    [[fault]]
    kind = "kill_actor"
    actor = "inventory"           # index = 0 for a given one; default a random one
    at = 5.0

    [[fault]]
    kind = "payments"
    every = 20.0                  # on average every 20 s (Poisson, from the seed)
    window = [5.0, 60.0]
    duration = 4.0
    error_rate = 0.5

``schedule(plan, run_s, counts, seed)`` turns it into the faults of one run: each with its
start, its duration and its target drawn from the seed, so the same seed replays the same
faults at the same times on the same targets. The kinds and their fields are in
``marketplace.sim.faults.kinds``; ``marketplace faults list`` prints them.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from marketplace.sim.faults.kinds import (
    Calls,
    Fault,
    FaultBase,
    KillActor,
    KillNode,
    KillReplica,
    Payments,
    Postgres,
    RabbitMQ,
    SqliteLock,
)


class PlanError(ValueError):
    """A plan that cannot run: the message names the file and the field at fault."""


class FaultPlan(BaseModel):
    """A named list of faults."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    description: str = ""
    seed: int | None = None
    faults: tuple[Fault, ...] = Field(alias="fault")

    @model_validator(mode="after")
    def _some_fault(self) -> FaultPlan:
        if not self.faults:
            raise ValueError("a plan needs at least one [[fault]]")
        return self


def builtin_plans() -> dict[str, Path]:
    """The plans shipped with the simulator, by name."""
    folder = resources.files("marketplace.sim.faults") / "plans"
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def load_plan(name_or_path: str | Path) -> FaultPlan:
    """The plan in a TOML file, or the built-in plan of that name."""
    path = Path(name_or_path)
    if not path.exists():
        builtin = builtin_plans().get(str(name_or_path))
        if builtin is None:
            known = ", ".join(sorted(builtin_plans()))
            raise PlanError(f"{name_or_path}: no such file, nor a built-in plan ({known})")
        path = builtin
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{path}: {exc}") from None
    return parse_plan(data, source=str(path))


def parse_plan(data: Mapping[str, Any], source: str = "<plan>") -> FaultPlan:
    """Validate a plan's data, or raise ``PlanError`` naming ``source`` and each bad field."""
    try:
        return FaultPlan.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise PlanError(f"{source}: {problems}") from None


def _problem(error: Any) -> str:
    # Pydantic's location is ("fault", 2, "postgres", "action"): show it as fault[2].action,
    # without the union member's tag that pydantic inserts.
    parts: list[str] = []
    for item in error["loc"]:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
        elif parts and parts[-1].endswith("]") and item in _TAGS:
            continue
        else:
            parts.append(str(item))
    where = ".".join(parts) or "plan"
    return f"{where}: {error['msg']}"


_TAGS = {
    "kill_actor",
    "kill_replica",
    "kill_node",
    "sqlite_lock",
    "postgres",
    "rabbitmq",
    "payments",
    "calls",
}


@dataclass(frozen=True)
class ScheduledFault:
    """One fault of one run: ``fault`` starting ``start`` seconds in, with its target drawn.

    ``index`` is the actor's index for ``kill_actor`` (drawn when the plan gave none);
    ``pick`` is a draw in [0, 1) that chooses among targets only known at run time (a Serve
    replica); ``seed`` seeds what the fault draws while it applies (which calls it loses).
    """

    id: str
    fault: FaultBase
    start: float
    index: int | None = None
    pick: float = 0.0
    seed: int = 0

    @property
    def kind(self) -> str:
        """The fault's ``kind``."""
        return self.fault.describe_kind()

    @property
    def duration(self) -> float:
        """Seconds it applies (0 for a kill or a restart)."""
        return self.fault.duration if self.fault.windowed else 0.0

    @property
    def end(self) -> float:
        """When it is lifted, in seconds from the run's start."""
        return self.start + self.duration

    def describe(self) -> str:
        """One line: what it hits and how."""
        fault = self.fault
        match fault:
            case KillActor():
                return f"kill {fault.actor}-{self.index}"
            case KillReplica():
                return f"kill a {fault.deployment} replica"
            case KillNode(node=None):
                return "kill a worker node"
            case KillNode():
                return f"kill worker{fault.node}"
            case SqliteLock():
                return f"hold SQLite's write lock for {fault.duration:g} s"
            case RabbitMQ():
                return f"stop RabbitMQ for {fault.duration:g} s"
            case Postgres(action="restart"):
                return "restart PostgreSQL"
            case Postgres():
                return f"stop PostgreSQL for {fault.duration:g} s"
            case Payments():
                parts = []
                if fault.latency_ms:
                    parts.append(f"+{fault.latency_ms:g} ms")
                if fault.error_rate:
                    parts.append(f"{fault.error_rate:.0%} errors")
                return f"card network {' '.join(parts)} for {fault.duration:g} s"
            case Calls():
                parts = []
                if fault.delay_ms:
                    parts.append(f"+{fault.delay_ms:g} ms")
                if fault.drop_rate:
                    lost = "requests" if fault.lose == "request" else "replies"
                    parts.append(f"{fault.drop_rate:.0%} of {lost} lost")
                return (
                    f"calls {fault.source}->{fault.target} {' '.join(parts)} "
                    f"for {fault.duration:g} s"
                )
        return f"{self.kind} for {fault.duration:g} s"


@dataclass(frozen=True)
class Schedule:
    """The faults of one run, by start time."""

    plan: FaultPlan
    seed: int
    faults: Sequence[ScheduledFault] = field(default_factory=tuple)


def schedule(plan: FaultPlan, run_s: float, counts: Mapping[str, int], seed: int = 0) -> Schedule:
    """The faults of a ``run_s``-second run, drawn from the plan's seed (or ``seed``).

    ``counts`` is how many actors of each kind run (a random ``kill_actor`` target is drawn
    among them). Only faults that start within the run are kept (a shorter run, a quick
    experiment, takes the plan's first faults); ``every`` draws occurrences only inside its
    window.
    """
    used = plan.seed if plan.seed is not None else seed
    rng = random.Random(f"faults/{plan.name}/{used}")
    timed: list[tuple[float, int, FaultBase]] = []
    fault: FaultBase
    for position, fault in enumerate(plan.faults):
        if fault.at is not None:
            if fault.at < run_s:
                timed.append((fault.at, position, fault))
            continue
        assert fault.every is not None
        start, stop = fault.window if fault.window is not None else (0.0, run_s)
        stop = min(stop, run_s)
        moment = start + rng.expovariate(1 / fault.every)
        while moment < stop:
            timed.append((moment, position, fault))
            moment += rng.expovariate(1 / fault.every)
    timed.sort(key=lambda item: (item[0], item[1]))
    scheduled = []
    for number, (start, position, fault) in enumerate(timed):
        index: int | None = None
        if isinstance(fault, KillActor):
            count = counts.get(fault.actor, 1)
            index = fault.index if fault.index is not None else rng.randrange(max(count, 1))
            if index >= max(count, 1):
                raise PlanError(
                    f"fault[{position}].index: {fault.actor} has {count} actor(s), no index {index}"
                )
        scheduled.append(
            ScheduledFault(
                id=f"f{number}",
                fault=fault,
                start=round(start, 3),
                index=index,
                pick=rng.random(),
                seed=rng.randrange(2**31),
            )
        )
    return Schedule(plan=plan, seed=used, faults=tuple(scheduled))
