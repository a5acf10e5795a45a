"""Experiment files: TOML in, a frozen ``ExperimentSpec`` out, or a ``SpecError`` that names the
file and the key at fault.

The format (annotated in ``marketplace/sim/README.md``): top-level ``name``, ``description``,
``repeats`` and ``via``; ``[settings]`` and ``[workload]`` hold the values every point shares;
``[sweep]`` maps knobs to lists of values (the points are their cartesian product);
``[quick]`` says how ``--quick`` shrinks the experiment; ``[report]`` says how the best point
and the knee are chosen; each ``[[plot]]`` is one PNG.

A knob is a ``Settings`` field (the runtime), a ``SimConfig`` field (the workload) or ``actors``,
which sets every actor count at once. The two sets of names do not overlap, so a knob needs no
prefix.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from marketplace.config import Settings
from marketplace.sim.experiments.consistency import CONSISTENCY_COLUMNS
from marketplace.sim.experiments.knobs import (
    ACTORS,
    RESERVED_SETTINGS,
    SETTINGS_KNOBS,
    WORKLOAD_KNOBS,
    knob_kind,
    split_knobs,
    workload_config,
    workload_type,
)
from marketplace.sim.experiments.points import expand
from marketplace.sim.faults.recovery import FAULT_COLUMNS
from marketplace.sim.simulation import SimConfig

VIA = ("client", "http")
"""How points drive the marketplace: in process through the client, or over HTTP."""

METRICS = (
    "offered_rate",
    "achieved_rate",
    "ops",
    "ok",
    "failed",
    "dropped",
    "p50_ms",
    "p99_ms",
    "mean_ms",
    "checkout_ok",
    "checkout_failed",
    "checkout_p50_ms",
    "checkout_p99_ms",
    "little_l",
    "little_lambda_w",
    "max_in_flight_seen",
    "elapsed_s",
    "seed",
    "audit_ok",
    "audit_violations",
    "orders_confirmed",
    "orders_cancelled",
    "compensations",
    "point_s",
    *FAULT_COLUMNS,
    *CONSISTENCY_COLUMNS,
)
"""The number columns every row has (``metrics.py`` measures them up to ``elapsed_s``, the
runner adds the rest); plots and the report may name any of these or a knob."""

QUICK_DURATION_S = 5.0
"""The longest a point runs under ``--quick`` unless ``[quick.workload]`` says otherwise."""

DEFAULT_PLOT = ("p99_ms", "achieved_rate")

_TOP_KEYS = frozenset(
    {"name", "description", "repeats", "via", "settings", "workload", "sweep", "quick"}
    | {"report", "plot"}
)
_QUICK_KEYS = frozenset({"repeats", "settings", "workload", "sweep"})
_REPORT_KEYS = frozenset({"x", "metric", "goal", "knee", "slo_p99_ms"})
_PLOT_KEYS = frozenset({"kind", "x", "y", "series", "title", "name", "logy"})

TIMELINE_METRICS = (
    "offered",
    "achieved",
    "failed",
    "p50_ms",
    "p99_ms",
    "in_flight",
    "replicas",
)
"""The columns of ``timeline.csv``, per run and second: intended starts and completions per
second, failures, p50/p99 of the operations ending in that second, mean operations in flight,
and (``via = "http"`` only) the gateway's running replicas."""

PLOT_KINDS = ("sweep", "timeline")
"""``sweep``: metrics (means over repeats) against a knob or metric. ``timeline``: per-second
metrics against time into the run, one line per knob combination (mean over repeats)."""


class SpecError(ValueError):
    """An experiment file that cannot run; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class PlotSpec:
    """One PNG. A ``sweep`` plot draws ``y`` columns (mean over repeats) against ``x``, one
    line per ``y`` and per value of ``series`` when given; a ``timeline`` plot draws
    ``TIMELINE_METRICS`` against ``x = "t"`` (seconds into the run), one line per ``y`` and
    knob combination."""

    x: str
    y: tuple[str, ...]
    series: str | None = None
    title: str = ""
    name: str = ""
    logy: bool = False
    kind: Literal["sweep", "timeline"] = "sweep"

    @property
    def file_name(self) -> str:
        """The PNG's file name: ``name``, else ``<y>-vs-<x>``."""
        stem = self.name or f"{'-'.join(self.y)}-vs-{self.x}"
        return f"{stem}.png"


@dataclasses.dataclass(frozen=True)
class ReportSpec:
    """How ``report.md`` picks the best point and the knee (see ``report.py``).

    ``metric`` ranks points (``goal`` max or min) among those whose audit passed and, with
    ``slo_p99_ms``, whose p99 stays within it. The knee is looked for in ``knee`` (default:
    ``metric``) along the knob ``x`` (default: the first swept knob).
    """

    x: str | None = None
    metric: str = "achieved_rate"
    goal: Literal["max", "min"] = "max"
    knee: str | None = None
    slo_p99_ms: float | None = None

    @property
    def knee_metric(self) -> str:
        """The column the knee is found on."""
        return self.knee or self.metric


@dataclasses.dataclass(frozen=True)
class QuickSpec:
    """What ``--quick`` changes: ``repeats``, merged ``settings`` and ``workload`` values, and
    sweep lists that replace the full ones knob by knob."""

    repeats: int = 1
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    workload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sweep: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """A parsed experiment file. ``sweep`` keeps the file's order: the first knob varies
    slowest. ``source`` is the file (or ``builtin:NAME``) for error messages and the report."""

    name: str
    source: str
    description: str = ""
    repeats: int = 1
    via: str = "client"
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    workload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sweep: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    plots: tuple[PlotSpec, ...] = ()
    report: ReportSpec = dataclasses.field(default_factory=ReportSpec)
    quick: QuickSpec = dataclasses.field(default_factory=QuickSpec)

    @property
    def knobs(self) -> tuple[str, ...]:
        """The swept knobs, in the file's order."""
        return tuple(self.sweep)

    def quickened(self) -> ExperimentSpec:
        """This experiment as ``--quick`` runs it: ``[quick]`` applied over the full values.

        What ``[quick]`` leaves unsaid shrinks anyway: ``duration`` to at most
        ``QUICK_DURATION_S`` and each sweep of more than two values to its first and last, so a
        file without ``[quick]`` still runs quickly.
        """
        workload = {**self.workload, **self.quick.workload}
        if "duration" not in self.quick.workload:
            duration = workload.get("duration", SimConfig.duration)
            workload["duration"] = min(duration, QUICK_DURATION_S)
        sweep = {
            knob: values if len(values) <= 2 else (values[0], values[-1])
            for knob, values in self.sweep.items()
        }
        sweep.update(self.quick.sweep)
        return dataclasses.replace(
            self,
            repeats=self.quick.repeats,
            settings=_frozen({**self.settings, **self.quick.settings}),
            workload=_frozen(workload),
            sweep=_frozen(sweep),
            quick=QuickSpec(repeats=self.quick.repeats),
        )


def builtin_dir() -> Path:
    """The folder of the built-in experiment files (package data)."""
    return Path(str(resources.files("marketplace.sim.experiments") / "builtin"))


def builtin_names() -> list[str]:
    """The built-in experiments' names, sorted."""
    return sorted(path.stem for path in builtin_dir().glob("*.toml"))


def load_spec(file_or_name: str | Path) -> ExperimentSpec:
    """Read an experiment file, or a built-in one by name (``scaling``, ``latency``, ...).

    A path that exists wins over a built-in of the same name.
    """
    path = Path(file_or_name)
    if path.is_file():
        return parse_spec(path.read_text(encoding="utf-8"), str(path))
    name = str(file_or_name)
    if name in builtin_names():
        builtin = builtin_dir() / f"{name}.toml"
        return parse_spec(builtin.read_text(encoding="utf-8"), f"builtin:{name}")
    known = ", ".join(builtin_names())
    raise SpecError(f"{name}: no such file and no built-in experiment of that name ({known})")


def parse_spec(text: str, source: str = "<string>") -> ExperimentSpec:
    """Parse and validate TOML ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    return _Parser(source).spec(data)


def spec_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> ExperimentSpec:
    """Check and build a spec from the same structure a file holds, as a dict (for notebooks
    and scripts that build experiments in code); ``source`` names it in errors."""
    return _Parser(source).spec(dict(data))


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


# The expected Python types of workload values, where the default does not say (None).
_WORKLOAD_TYPES: dict[str, type] = {
    "agents": int,
    "rate_steps": list,
    "zipf": float,
    "faults": str,
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{self.source}: {key}: {problem}")

    def spec(self, data: dict[str, Any]) -> ExperimentSpec:
        self.only(data, _TOP_KEYS, "")
        name = data.get("name", Path(self.source.removeprefix("builtin:")).stem)
        if not isinstance(name, str) or not name:
            raise self.error("name", "must be a non-empty string")
        description = self.typed(data, "description", str, "")
        repeats = self.count(data, "repeats", "repeats")
        via = self.typed(data, "via", str, "client")
        if via not in VIA:
            raise self.error("via", f"must be one of {', '.join(VIA)}, not {via!r}")
        settings = self.values(self.table(data, "settings"), "settings")
        workload = self.values(self.table(data, "workload"), "workload")
        sweep = self.sweep(self.table(data, "sweep"), "sweep")
        quick = self.quick(self.table(data, "quick"), sweep)
        columns = set(METRICS) | set(sweep) | set(settings) | set(workload)
        report = self.report(self.table(data, "report"), sweep, columns)
        plots = self.plots(data.get("plot", []), sweep, columns)
        spec = ExperimentSpec(
            name=name,
            source=self.source,
            description=description,
            repeats=repeats,
            via=via,
            settings=_frozen(settings),
            workload=_frozen(workload),
            sweep=_frozen(sweep),
            plots=plots,
            report=report,
            quick=quick,
        )
        # Every point, full and quick, must make valid Settings and SimConfig before any runs.
        for variant, label in ((spec, "sweep"), (spec.quickened(), "quick")):
            try:
                expand(variant)
            except ValueError as exc:
                raise self.error(label, str(exc)) from None
        return spec

    def only(self, data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            key = f"{where}.{unknown[0]}" if where else unknown[0]
            raise self.error(key, f"unknown key; valid keys here: {', '.join(sorted(allowed))}")

    def table(self, data: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(f"{where}{key}", "must be a table")
        return value

    def typed(self, data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
        value = data.get(key, default)
        if not isinstance(value, kind):
            raise self.error(key, f"must be a {kind.__name__}, not {value!r}")
        return value

    def count(self, data: Mapping[str, Any], key: str, label: str) -> int:
        value = data.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(label, f"must be an integer >= 1, not {value!r}")
        return value

    def knob(self, knob: str, where: str) -> str:
        kind = knob_kind(knob)
        allowed = {
            "settings": SETTINGS_KNOBS | {ACTORS},
            "workload": WORKLOAD_KNOBS,
            "sweep": SETTINGS_KNOBS | WORKLOAD_KNOBS | {ACTORS},
        }[where.split(".")[-1]]
        if knob in RESERVED_SETTINGS:
            raise self.error(f"{where}.{knob}", "is set per point by the runner, not by the file")
        if kind is None or knob not in allowed:
            valid = ", ".join(sorted(allowed))
            raise self.error(f"{where}.{knob}", f"unknown knob; valid knobs: {valid}")
        return knob

    def value(self, knob: str, value: Any, key: str) -> Any:
        """Check one value by building what it configures (Settings or SimConfig) with it."""
        kind = knob_kind(knob)
        if kind == "workload":
            expected = workload_type(knob)
            numeric = expected is float and isinstance(value, int)
            if isinstance(value, bool) or not (isinstance(value, expected) or numeric):
                raise self.error(key, f"must be a {expected.__name__}, not {value!r}")
            try:
                workload_config({knob: value})
            except (TypeError, ValueError) as exc:
                raise self.error(key, str(exc)) from None
            return float(value) if numeric else value
        settings, _ = split_knobs({knob: value})
        try:
            Settings(**settings)
        except ValidationError as exc:
            problem = "; ".join(error["msg"] for error in exc.errors())
            raise self.error(key, f"{problem} (got {value!r})") from None
        return value

    def values(self, data: Mapping[str, Any], where: str) -> dict[str, Any]:
        return {
            self.knob(knob, where): self.value(knob, value, f"{where}.{knob}")
            for knob, value in data.items()
        }

    def sweep(self, data: Mapping[str, Any], where: str) -> dict[str, tuple[Any, ...]]:
        sweep: dict[str, tuple[Any, ...]] = {}
        for knob, values in data.items():
            self.knob(knob, "sweep")
            key = f"{where}.{knob}"
            if not isinstance(values, list) or not values:
                raise self.error(key, "must be a non-empty list of values")
            checked = tuple(self.value(knob, v, f"{key}[{i}]") for i, v in enumerate(values))
            if len(set(map(repr, checked))) < len(checked):
                raise self.error(key, "lists a value twice")
            sweep[knob] = checked
        return sweep

    def quick(self, data: Mapping[str, Any], sweep: Mapping[str, Any]) -> QuickSpec:
        self.only(data, _QUICK_KEYS, "quick")
        quick_sweep = self.sweep(self.table(data, "sweep", "quick."), "quick.sweep")
        extra = sorted(set(quick_sweep) - set(sweep))
        if extra:
            raise self.error(f"quick.sweep.{extra[0]}", "is not swept in [sweep]")
        return QuickSpec(
            repeats=self.count(data, "repeats", "quick.repeats"),
            settings=_frozen(self.values(self.table(data, "settings", "quick."), "quick.settings")),
            workload=_frozen(self.values(self.table(data, "workload", "quick."), "quick.workload")),
            sweep=_frozen(quick_sweep),
        )

    def column(self, value: Any, key: str, columns: set[str]) -> str:
        if not isinstance(value, str) or value not in columns:
            valid = ", ".join(sorted(columns))
            raise self.error(key, f"{value!r} is not a column; valid columns: {valid}")
        return value

    def report(
        self, data: Mapping[str, Any], sweep: Mapping[str, Any], columns: set[str]
    ) -> ReportSpec:
        self.only(data, _REPORT_KEYS, "report")
        x = data.get("x", next(iter(sweep), None))
        if x is not None and x not in sweep:
            raise self.error("report.x", f"{x!r} is not a swept knob ({', '.join(sweep)})")
        goal = data.get("goal", "max")
        if goal not in ("max", "min"):
            raise self.error("report.goal", f"must be max or min, not {goal!r}")
        slo = data.get("slo_p99_ms")
        if slo is not None and (isinstance(slo, bool) or not isinstance(slo, int | float)):
            raise self.error("report.slo_p99_ms", f"must be a number, not {slo!r}")
        knee = data.get("knee")
        return ReportSpec(
            x=x,
            metric=self.column(data.get("metric", "achieved_rate"), "report.metric", columns),
            goal=goal,
            knee=None if knee is None else self.column(knee, "report.knee", columns),
            slo_p99_ms=None if slo is None else float(slo),
        )

    def plots(self, data: Any, sweep: Mapping[str, Any], columns: set[str]) -> tuple[PlotSpec, ...]:
        if not isinstance(data, list):
            raise self.error("plot", "must be an array of tables ([[plot]])")
        plots = []
        for index, entry in enumerate(data):
            where = f"plot[{index}]"
            if not isinstance(entry, dict):
                raise self.error(where, "must be a table")
            self.only(entry, _PLOT_KEYS, where)
            kind = entry.get("kind", "sweep")
            if kind not in PLOT_KINDS:
                raise self.error(f"{where}.kind", f"must be sweep or timeline, not {kind!r}")
            if kind == "timeline":
                plots.append(self.timeline_plot(entry, where))
                continue
            x = entry.get("x", next(iter(sweep), None))
            if x is None:
                raise self.error(f"{where}.x", "is required when nothing is swept")
            y = entry.get("y", list(DEFAULT_PLOT))
            ys: Sequence[Any] = [y] if isinstance(y, str) else y
            if not isinstance(ys, list) or not ys:
                raise self.error(f"{where}.y", "must be a column or a non-empty list of columns")
            series = entry.get("series")
            plot = PlotSpec(
                x=self.column(x, f"{where}.x", columns),
                y=tuple(self.column(c, f"{where}.y", columns) for c in ys),
                series=None if series is None else self.column(series, f"{where}.series", columns),
                title=self.typed(entry, "title", str, ""),
                name=self.typed(entry, "name", str, ""),
                logy=self.typed(entry, "logy", bool, False),
            )
            plots.append(plot)
        names = [plot.file_name for plot in plots]
        if len(set(names)) < len(names):
            raise self.error("plot", "two plots would write the same file; give them names")
        return tuple(plots)

    def timeline_plot(self, entry: Mapping[str, Any], where: str) -> PlotSpec:
        if entry.get("x", "t") != "t":
            raise self.error(f"{where}.x", "a timeline's x is t (seconds into the run)")
        if "series" in entry:
            raise self.error(f"{where}.series", "a timeline has one line per knob combination")
        y = entry.get("y", ["achieved", "p99_ms"])
        ys: Sequence[Any] = [y] if isinstance(y, str) else y
        if not isinstance(ys, list) or not ys:
            raise self.error(f"{where}.y", "must be a column or a non-empty list of columns")
        timeline = set(TIMELINE_METRICS)
        return PlotSpec(
            x="t",
            y=tuple(self.column(c, f"{where}.y", timeline) for c in ys),
            title=self.typed(entry, "title", str, ""),
            name=self.typed(entry, "name", str, ""),
            logy=self.typed(entry, "logy", bool, False),
            kind="timeline",
        )
