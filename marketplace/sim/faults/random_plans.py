"""Random fault plans for a chaos campaign, each drawn from its own seed.

``random_plan(seed, duration, kinds)`` draws one to four faults among ``kinds`` (the fault
kinds that have something to hit where the campaign runs), at times inside the run, leaving the
last quarter of the run fault-free so that recovery can show. The same seed and arguments give
the same plan, so a plan that breaks something is reproduced from its seed alone.
``plan_toml(plan)`` writes a plan back as TOML, to rerun it with ``simulate --faults``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from marketplace.sim.faults.kinds import CALLERS
from marketplace.sim.faults.plan import FaultPlan, parse_plan

KILLABLE = ("catalog", "inventory", "carts", "payments", "shipments", "sellers", "orders")
"""Actor kinds a random plan kills (the bridge's relay only where a broker runs, the catalog's
read replicas only where they run)."""


def random_plan(
    seed: int,
    duration: float,
    kinds: Sequence[str],
    *,
    broker: bool = False,
    replicas: bool = False,
) -> FaultPlan:
    """One plan of one to four faults among ``kinds`` for a ``duration``-second run; with
    ``replicas``, the catalog's read replicas are among what it kills and cuts off."""
    if not kinds:
        raise ValueError("no fault kind to draw from")
    rng = random.Random(f"chaos/{seed}")
    latest = max(duration * 0.75, 1.0)
    faults = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(sorted(kinds))
        at = round(rng.uniform(min(2.0, latest / 2), latest), 1)
        span = round(rng.uniform(1.0, max(1.0, min(5.0, duration / 4))), 1)
        faults.append(_fault(rng, kind, at, span, broker, replicas))
    return parse_plan(
        {
            "name": f"chaos-{seed}",
            "description": f"Drawn from seed {seed} for a {duration:g} s run.",
            "seed": seed,
            "fault": faults,
        },
        source=f"chaos plan of seed {seed}",
    )


def _fault(
    rng: random.Random, kind: str, at: float, span: float, broker: bool, replicas: bool
) -> dict[str, Any]:
    # Appended only when they run, so that a seed draws the plan it always drew elsewhere.
    actors = [*KILLABLE, *(["relay"] if broker else []), *(["replicas"] if replicas else [])]
    match kind:
        case "kill_actor":
            return {"kind": kind, "actor": rng.choice(actors), "at": at}
        case "payments":
            if rng.random() < 0.5:
                return {"kind": kind, "at": at, "duration": span, "error_rate": 0.5}
            return {"kind": kind, "at": at, "duration": span, "latency_ms": 200.0}
        case "calls":
            callers = [c for c in CALLERS if c in ("client", "orders")]
            source = rng.choice([*callers, *(["replicas"] if replicas else [])])
            targets = {
                "orders": ["inventory", "payments", "shipments"],
                "client": ["orders", "carts", "catalog"],
                "replicas": ["catalog"],  # their polls of the shards: replication stalls
            }[source]
            return {
                "kind": kind,
                "from": source,
                "to": rng.choice(targets),
                "at": at,
                "duration": span,
                "drop_rate": round(rng.choice([0.1, 0.3, 0.5]), 2),
                "lose": rng.choice(["request", "reply"]),
            }
        case "postgres":
            if rng.random() < 0.5:
                return {"kind": kind, "action": "restart", "at": at}
            return {"kind": kind, "action": "stop", "at": at, "duration": span}
        case _:  # sqlite_lock, rabbitmq: a duration and nothing else
            return {"kind": kind, "at": at, "duration": span}


def plan_toml(plan: FaultPlan) -> str:
    """``plan`` as the TOML that ``load_plan`` reads back to the same plan."""
    lines = [f"name = {_value(plan.name)}", f"description = {_value(plan.description)}"]
    if plan.seed is not None:
        lines.append(f"seed = {plan.seed}")
    for fault in plan.faults:
        lines += ["", "[[fault]]"]
        data = fault.model_dump(by_alias=True, exclude_defaults=True)
        data = {"kind": fault.describe_kind(), **data}
        lines += [f"{key} = {_value(value)}" for key, value in data.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
