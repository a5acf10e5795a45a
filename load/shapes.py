"""The load shapes: how many users, spawned how fast, at each moment of a run.

Each shape reads its numbers from a dict of parameters (a scenario's ``[shape_params]`` table,
over the defaults below):

- ``steady``: ``users`` at ``spawn_rate`` for ``duration_s``.
- ``ramp``: from ``start_users`` up to ``users`` over ``ramp_s``, held until ``duration_s``.
- ``spike``: ``users`` steady, ``spike_users`` on top from ``spike_at_s`` for ``spike_s``.
- ``flash_sale``: every user arrives at once (``spawn_rate`` 0 means ``users`` per second):
  many buyers checking out one scarce product together.
- ``soak``: a gentle ramp to ``users`` over ``ramp_s``, then a long hold.

No Locust here: ``marketplace load`` reads these in its own process, and importing Locust there
would gevent-patch it and break its own HTTP calls. ``load/locust_shape.py`` hands them to Locust.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

BASE: dict[str, Any] = {"users": 10, "spawn_rate": 5, "duration_s": 60}

DEFAULTS: dict[str, dict[str, Any]] = {
    "steady": BASE,
    "ramp": {**BASE, "start_users": 1, "ramp_s": 30},
    "spike": {**BASE, "spike_users": 40, "spike_at_s": 20, "spike_s": 15, "spike_rate": 40},
    "flash_sale": {"users": 50, "spawn_rate": 0, "duration_s": 20},
    "soak": {"users": 20, "spawn_rate": 1, "duration_s": 3600, "ramp_s": 60},
}

Step = tuple[int, float]  # (users, spawn rate per second)


def _share(elapsed: float, over_s: float) -> float:
    return min(1.0, elapsed / over_s) if over_s > 0 else 1.0


def _steady(p: dict[str, Any], elapsed: float) -> Step:
    return int(p["users"]), float(p["spawn_rate"])


def _ramp(p: dict[str, Any], elapsed: float) -> Step:
    start, peak, ramp_s = int(p["start_users"]), int(p["users"]), float(p["ramp_s"])
    users = start + math.ceil((peak - start) * _share(elapsed, ramp_s))
    return max(1, users), max(float(p["spawn_rate"]), (peak - start) / max(ramp_s, 1))


def _spike(p: dict[str, Any], elapsed: float) -> Step:
    begin = float(p["spike_at_s"])
    extra = int(p["spike_users"]) if begin <= elapsed < begin + float(p["spike_s"]) else 0
    return int(p["users"]) + extra, float(p["spike_rate"])


def _flash_sale(p: dict[str, Any], elapsed: float) -> Step:
    return int(p["users"]), float(p["spawn_rate"]) or float(p["users"])


def _soak(p: dict[str, Any], elapsed: float) -> Step:
    return max(1, math.ceil(int(p["users"]) * _share(elapsed, float(p["ramp_s"])))), float(
        p["spawn_rate"]
    )


CURVES: dict[str, Callable[[dict[str, Any], float], Step]] = {
    "steady": _steady,
    "ramp": _ramp,
    "spike": _spike,
    "flash_sale": _flash_sale,
    "soak": _soak,
}


def parameters(shape: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shape's defaults with ``given`` on top; ValueError for an unknown shape."""
    if shape not in DEFAULTS:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(DEFAULTS)}")
    return {**DEFAULTS[shape], **(given or {})}


def step_at(shape: str, params: dict[str, Any], elapsed: float) -> Step | None:
    """Users and spawn rate ``elapsed`` seconds into the run; None once the run is over."""
    full = parameters(shape, params)
    if elapsed >= float(full["duration_s"]):
        return None
    return CURVES[shape](full, elapsed)
