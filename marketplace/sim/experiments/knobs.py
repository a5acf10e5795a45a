"""The knobs an experiment turns: ``Settings`` fields (the runtime), ``SimConfig`` fields (the
workload) and ``actors`` (every actor count at once). The two sets of field names do not overlap,
so a knob needs no prefix; this module says which is which and splits a point's values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from marketplace.config import ACTOR_COUNTS, Settings
from marketplace.sim.simulation import SimConfig

ACTORS = "actors"
"""The convenience knob: one value for every actor count (``ACTOR_COUNTS``)."""

# Set per point by the runner (a fresh database, a unique namespace, the experiment's Ray).
RESERVED_SETTINGS = frozenset({"database_url", "namespace", "ray_address"})

SETTINGS_KNOBS = frozenset(Settings.model_fields) - RESERVED_SETTINGS
"""Runtime knobs: every ``Settings`` field but the reserved ones."""

WORKLOAD_KNOBS = frozenset(field.name for field in dataclasses.fields(SimConfig))
"""Workload knobs: every ``SimConfig`` field."""

# The expected Python types of workload values whose default (None) does not say.
_WORKLOAD_TYPES: dict[str, type] = {
    "agents": int,
    "rate_steps": list,
    "zipf": float,
    "faults": str,
}

KnobKind = Literal["settings", "workload", "actors"]


def knob_kind(knob: str) -> KnobKind | None:
    """Whether ``knob`` is a ``Settings`` field, a ``SimConfig`` field, ``actors``, or unknown
    (None). Reserved settings count as settings; the parser refuses them by name."""
    if knob == ACTORS:
        return "actors"
    if knob in SETTINGS_KNOBS or knob in RESERVED_SETTINGS:
        return "settings"
    if knob in WORKLOAD_KNOBS:
        return "workload"
    return None


def workload_type(knob: str) -> type:
    """The Python type a workload knob's value must have (an int passes for a float)."""
    if knob in _WORKLOAD_TYPES:
        return _WORKLOAD_TYPES[knob]
    default = next(f.default for f in dataclasses.fields(SimConfig) if f.name == knob)
    return type(default)


def split_knobs(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings overrides and workload values from knob values. ``actors`` becomes every actor
    count; an actor count given by name as well wins over it."""
    settings: dict[str, Any] = {}
    workload: dict[str, Any] = {}
    if ACTORS in values:
        settings.update(dict.fromkeys(ACTOR_COUNTS, values[ACTORS]))
    for knob, value in values.items():
        kind = knob_kind(knob)
        if kind == "settings":
            settings[knob] = value
        elif kind == "workload":
            workload[knob] = value
    return settings, workload


def workload_config(values: Mapping[str, Any]) -> SimConfig:
    """A ``SimConfig`` from workload values (TOML's ``rate_steps`` arrays become tuples)."""
    values = dict(values)
    if values.get("rate_steps") is not None:
        values["rate_steps"] = tuple(tuple(step) for step in values["rate_steps"])
    return SimConfig(**values)
