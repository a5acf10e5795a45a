"""An experiment's points: the cartesian product of its sweeps, times its repeats.

The first swept knob varies slowest and repeats are innermost, so a point's repeats run one
after another. Repeat ``r`` runs with workload seed ``seed + r - 1``: repeats sample different
markets and arrivals, while every knob combination sees the same seeds, so the knobs are
compared on the same draws.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from marketplace.config import Settings
from marketplace.sim.experiments.knobs import split_knobs, workload_config
from marketplace.sim.simulation import SimConfig

if TYPE_CHECKING:
    from marketplace.sim.experiments.spec import ExperimentSpec


@dataclasses.dataclass(frozen=True)
class Point:
    """One run: knob combination number ``index`` (1-based), its ``repeat`` (1-based).

    ``knobs`` are the swept values (the table's columns); ``settings`` every ``Settings``
    override (shared and swept, ``actors`` expanded); ``config`` the workload to simulate.
    """

    index: int
    repeat: int
    knobs: Mapping[str, Any]
    settings: Mapping[str, Any]
    config: SimConfig

    def label(self) -> str:
        """The swept values as ``knob=value`` pairs (``-`` when nothing is swept)."""
        return (
            " ".join(f"{knob}={format_value(value)}" for knob, value in self.knobs.items()) or "-"
        )

    def runtime_settings(self, **fixed: Any) -> Settings:
        """The runtime's ``Settings``: this point's overrides plus ``fixed`` (database URL,
        namespace, Ray), over whatever the environment sets."""
        return Settings(**{**self.settings, **fixed})


def format_value(value: Any) -> str:
    """A knob value for labels and tables (enums by value, floats without trailing zeros)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(getattr(value, "value", value))


def expand(spec: ExperimentSpec) -> list[Point]:
    """Every point of ``spec`` in run order. Raises ``ValueError`` naming the combination when
    one makes invalid settings or an invalid workload (e.g. ``agents`` with a zero think time)."""
    knobs = list(spec.sweep)
    points: list[Point] = []
    combinations = itertools.product(*(spec.sweep[knob] for knob in knobs))
    for index, values in enumerate(combinations, start=1):
        swept = dict(zip(knobs, values, strict=True))
        # [settings] holds only runtime knobs and [workload] only workload ones (the parser
        # sees to it); the sweep holds both.
        settings, swept_workload = split_knobs({**spec.settings, **swept})
        workload = {**spec.workload, **swept_workload}
        label = " ".join(f"{k}={format_value(v)}" for k, v in swept.items()) or "the point"
        try:
            Settings(**settings)
        except ValidationError as exc:
            problem = "; ".join(error["msg"] for error in exc.errors())
            raise ValueError(f"{label}: invalid settings: {problem}") from None
        for repeat in range(1, spec.repeats + 1):
            seed = workload.get("seed", SimConfig.seed) + repeat - 1
            try:
                config = workload_config({**workload, "seed": seed})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{label}: invalid workload: {exc}") from None
            points.append(
                Point(
                    index=index,
                    repeat=repeat,
                    knobs=MappingProxyType(swept),
                    settings=MappingProxyType(settings),
                    config=config,
                )
            )
    return points


def point_count(spec: ExperimentSpec) -> int:
    """How many knob combinations ``spec`` has (runs: this times ``spec.repeats``)."""
    count = 1
    for values in spec.sweep.values():
        count *= len(values)
    return count
