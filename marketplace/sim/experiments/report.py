"""An experiment's outputs from its rows: ``results.csv`` (one row per run), one PNG per plot
and ``report.md`` (the table of means over repeats, the best point, the knee, the audit).

The best point: among knob combinations whose every audit passed (and, when ``slo_p99_ms`` is
set, whose mean p99 is within it), the one with the highest mean ``metric`` (lowest with
``goal = "min"``); a tie goes to the earlier combination in sweep order, the smaller setup.

The knee (the Kneedle rule): along the numeric knob ``x``, with the mean ``knee`` metric per
value, x scaled to [0, 1] between its first and last values and the metric by its range, the
knee is the value whose point lies farthest from the straight line joining the first and the
last points, if that distance is at least ``KNEE_MIN_DISTANCE`` (else the curve is about
straight and has no knee; a flat one has none either).
It finds where a throughput curve stops rising as fast (adding more buys less) and where a
latency curve starts climbing (past it, queues build). With other knobs swept too, each of
their combinations is a series with its own knee. It needs three or more values of ``x``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marketplace.sim.experiments import consistency
from marketplace.sim.experiments.points import format_value
from marketplace.sim.experiments.spec import METRICS, ExperimentSpec, PlotSpec, ReportSpec

KNEE_MIN_DISTANCE = 0.1
"""The least distance (in the [0, 1] scaled plot) from the chord that counts as a knee."""

# Columns summed rather than averaged over repeats (counts), and those that are not numbers.
_SUMMED = frozenset(
    {"ops", "ok", "failed", "dropped", "checkout_ok", "checkout_failed"}
    | {"reads", "writes", "stale_reads", "session_violations", "mode_violations"}
)
_TEXT = frozenset({"failures"})

# The report table's metric columns and their headers.
_TABLE_COLUMNS = (
    ("offered_rate", "offered/s"),
    ("achieved_rate", "achieved/s"),
    ("ok", "ok"),
    ("failed", "failed"),
    ("dropped", "dropped"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("checkout_p99_ms", "checkout p99 ms"),
    ("little_l", "L"),
    ("little_lambda_w", "λW"),
)


@dataclasses.dataclass(frozen=True)
class Knee:
    """The knee of one series: ``x`` None when there is none, with ``note`` saying why."""

    series: str
    x: Any
    distance: float | None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class ReportPaths:
    """What ``write_report`` wrote."""

    out: Path
    csv: Path
    plots: tuple[Path, ...]
    report: Path
    timeline: Path | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def mean_table(rows: Sequence[Mapping[str, Any]], knobs: Sequence[str]) -> list[dict[str, Any]]:
    """One row per knob combination (``point``), in order: the knobs, ``runs``, counts summed
    over repeats, other numbers averaged (None when no repeat had one), ``audit_ok`` only if
    every repeat's audit passed (``consistency_ok`` likewise)."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["point"], []).append(row)
    table = []
    for point, group in groups.items():
        merged: dict[str, Any] = {"point": point, **{k: group[0].get(k) for k in knobs}}
        merged["runs"] = len(group)
        skipped = ("repeat", "seed", *_TEXT)  # a mean seed or a mean of free text says nothing
        columns = [c for c in group[0] if c not in merged and c not in skipped]
        for column in columns:
            if column in ("audit_ok", "consistency_ok"):
                merged[column] = all(bool(r.get(column)) for r in group)
                continue
            values = [n for r in group if (n := _number(r.get(column))) is not None]
            if not values:
                merged[column] = None
            elif column in _SUMMED:
                merged[column] = int(sum(values))
            else:
                merged[column] = sum(values) / len(values)
        table.append(merged)
    return table


def best_point(table: Sequence[Mapping[str, Any]], spec: ReportSpec) -> Mapping[str, Any] | None:
    """The best row of a mean table by the module's rule; None when no row qualifies."""
    best: Mapping[str, Any] | None = None
    best_value = 0.0
    for row in table:
        value = _number(row.get(spec.metric))
        if value is None or not row.get("audit_ok"):
            continue
        if spec.slo_p99_ms is not None:
            p99 = _number(row.get("p99_ms"))
            if p99 is None or p99 > spec.slo_p99_ms:
                continue
        better = value > best_value if spec.goal == "max" else value < best_value
        if best is None or better:
            best, best_value = row, value
    return best


def knee_index(xs: Sequence[float], ys: Sequence[float]) -> tuple[int | None, float | None]:
    """The index of the knee of ``ys`` over increasing ``xs`` and its distance from the chord
    (scaled), by the module's rule; ``(None, distance)`` when there is none."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    if len(xs) < 3 or xs[-1] == xs[0]:
        return None, None
    low, high = min(ys), max(ys)
    if high == low:
        return None, 0.0
    # x scaled by its first and last values, y by its range (so a curve that rises and falls
    # back stays within [0, 1]); the chord joins the first and last scaled points.
    first, last = (ys[0] - low) / (high - low), (ys[-1] - low) / (high - low)
    slope = last - first
    norm = math.hypot(1.0, slope)
    distances = []
    for x, y in zip(xs, ys, strict=True):
        sx = (x - xs[0]) / (xs[-1] - xs[0])
        sy = (y - low) / (high - low)
        distances.append(abs(sy - (first + slope * sx)) / norm)
    inner = range(1, len(xs) - 1)
    at = max(inner, key=lambda i: distances[i])
    if distances[at] < KNEE_MIN_DISTANCE:
        return None, distances[at]
    return at, distances[at]


def knees(table: Sequence[Mapping[str, Any]], spec: ExperimentSpec) -> list[Knee]:
    """The knee of the report's ``knee`` metric along ``x`` for each series (combination of
    the other swept knobs) of a mean table."""
    x, metric = spec.report.x, spec.report.knee_metric
    if x is None:
        return [Knee("all", None, None, "nothing is swept")]
    others = [k for k in spec.knobs if k != x]
    series: dict[str, list[Mapping[str, Any]]] = {}
    for row in table:
        label = " ".join(f"{k}={format_value(row.get(k))}" for k in others) or "all"
        series.setdefault(label, []).append(row)
    found = []
    for label, group in series.items():
        pairs = [(_number(r.get(x)), _number(r.get(metric))) for r in group]
        if any(px is None for px, _ in pairs):
            found.append(Knee(label, None, None, f"{x} is not numeric"))
            continue
        points = sorted((px, py) for px, py in pairs if px is not None and py is not None)
        if len(points) < 3:
            found.append(Knee(label, None, None, f"needs 3 or more values of {x} with {metric}"))
            continue
        at, distance = knee_index([p[0] for p in points], [p[1] for p in points])
        if at is None:
            found.append(Knee(label, None, distance, "about straight: no knee in this range"))
        else:
            found.append(Knee(label, points[at][0], distance))
    return found


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Every row, columns in first-seen order (a column a row lacks is left empty)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return path


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return format_value(value)
    return getattr(value, "value", value)


def _is_ms(column: str) -> bool:
    return column.endswith("_ms")


def plot(
    table: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    spec: PlotSpec,
    path: Path,
) -> Path:
    """One PNG: each ``y`` (mean over repeats, with each repeat as a faint dot) against ``x``,
    per ``series`` value. Milliseconds go on the left axis and other units on a right one when
    both are plotted."""
    numeric = all(_number(r.get(spec.x)) is not None for r in table)
    categories: list[str] = []
    if not numeric:
        for row in table:
            label = format_value(row.get(spec.x))
            if label not in categories:
                categories.append(label)

    def position(value: Any) -> float:
        number = _number(value)
        if numeric and number is not None:
            return number
        return float(categories.index(format_value(value)))

    left_cols = [y for y in spec.y if _is_ms(y) == _is_ms(spec.y[0])]
    right_cols = [y for y in spec.y if y not in left_cols]
    figure, left = _figure()
    right = left.twinx() if right_cols else None
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in table:
        key = format_value(row.get(spec.series)) if spec.series else ""
        groups.setdefault(key, []).append(row)
    markers = "osD^v<>"
    colour = 0
    for number, (group_key, group) in enumerate(groups.items()):
        for column in spec.y:
            axis = left if column in left_cols or right is None else right
            line = [
                (position(r.get(spec.x)), y)
                for r in group
                if (y := _number(r.get(column))) is not None
            ]
            line.sort()
            if not line:
                continue
            label = column if not spec.series else f"{column}, {spec.series}={group_key}"
            # Lines between categories (sync, async, none) would suggest values in between.
            style = ("-" if axis is left else "--") if numeric else "none"
            drawn = axis.plot(
                [p[0] for p in line],
                [p[1] for p in line],
                linestyle=style,
                markersize=7,
                marker=markers[number % len(markers)],
                color=f"C{colour % 10}",
                label=label,
            )
            colour += 1
            points = {r.get("point") for r in group}
            dots = [
                (position(r.get(spec.x)), y)
                for r in rows
                if r.get("point") in points and (y := _number(r.get(column))) is not None
            ]
            if len(dots) > len(line):
                axis.scatter(
                    [d[0] for d in dots],
                    [d[1] for d in dots],
                    s=10,
                    alpha=0.35,
                    color=drawn[0].get_color(),
                )
    left.set_xlabel(spec.x)
    left.set_ylabel(", ".join(left_cols))
    if right is not None:
        right.set_ylabel(", ".join(right_cols))
    if not numeric:
        left.set_xticks(range(len(categories)), categories)
    elif spec.x not in METRICS:  # a knob: its values as ticks (not 1.2 actors)
        ticks = sorted({position(r.get(spec.x)) for r in table})
        if len(ticks) <= 12:
            left.set_xticks(ticks, [format_value(t if t % 1 else int(t)) for t in ticks])
    title = spec.title or f"{', '.join(spec.y)} against {spec.x}"
    return _finish(figure, left, right, spec.logy, title, path)


def timeline_plot(
    timeline: Sequence[Mapping[str, Any]],
    spec: PlotSpec,
    path: Path,
    knobs: Sequence[str],
) -> Path:
    """One PNG of per-second metrics against time into the run: one line per ``y`` and knob
    combination (mean over its repeats), milliseconds on the left axis and rates on a right
    one when both are drawn."""
    # (point, t) -> the repeats' values, per column
    by_point: dict[Any, dict[float, list[Mapping[str, Any]]]] = {}
    labels: dict[Any, str] = {}
    for entry in timeline:
        point = entry.get("point")
        by_point.setdefault(point, {}).setdefault(float(entry["t"]), []).append(entry)
        labels[point] = " ".join(f"{k}={format_value(entry.get(k))}" for k in knobs)
    left_cols = [y for y in spec.y if _is_ms(y) == _is_ms(spec.y[0])]
    right_cols = [y for y in spec.y if y not in left_cols]
    figure, left = _figure()
    right = left.twinx() if right_cols else None
    colour = 0
    for point, steps in by_point.items():
        for column in spec.y:
            axis = left if column in left_cols or right is None else right
            line = []
            for t, entries in sorted(steps.items()):
                values = [n for e in entries if (n := _number(e.get(column))) is not None]
                if values:
                    line.append((t, sum(values) / len(values)))
            if not line:
                continue
            label = f"{column}, {labels[point]}" if labels[point] else column
            axis.plot(
                [p[0] for p in line],
                [p[1] for p in line],
                "-" if axis is left else "--",
                color=f"C{colour % 10}",
                label=label,
            )
            colour += 1
    left.set_xlabel("t (s into the run)")
    left.set_ylabel(", ".join(left_cols))
    if right is not None:
        right.set_ylabel(", ".join(right_cols))
    title = spec.title or f"{', '.join(spec.y)} over time"
    return _finish(figure, left, right, spec.logy, title, path)


def _figure() -> tuple[Any, Any]:
    # A Figure, not pyplot: matplotlib.use("Agg") here would switch a notebook's kernel away
    # from inline plots for every cell after an experiment run.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=110)
    return figure, figure.subplots()


def _finish(figure: Any, left: Any, right: Any, logy: bool, title: str, path: Path) -> Path:
    """Log scale if asked, one legend over both axes, grid, title; save to ``path``."""
    if logy:
        left.set_yscale("log")
    handles, labels = left.get_legend_handles_labels()
    if right is not None:
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        left.legend(handles, labels, fontsize="small", loc="best")
    left.grid(True, alpha=0.3)
    left.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "ok" if value else "**FAIL**"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return format_value(value)


def markdown_table(table: Sequence[Mapping[str, Any]], knobs: Sequence[str]) -> str:
    """The mean table as Markdown: point, knobs, runs, the main metrics, audit."""
    headers = ["point", *knobs, "runs", *(h for _, h in _TABLE_COLUMNS), "audit"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in table:
        cells = [_cell(row["point"]), *(format_value(row.get(k)) for k in knobs)]
        cells.append(_cell(row.get("runs")))
        cells += [_cell(row.get(column)) for column, _ in _TABLE_COLUMNS]
        cells.append(_cell(bool(row.get("audit_ok"))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _describe_point(row: Mapping[str, Any], knobs: Sequence[str]) -> str:
    knobs_text = ", ".join(f"{k} = {format_value(row.get(k))}" for k in knobs)
    return f"point {row['point']} ({knobs_text or 'the only point'})"


def write_report(
    spec: ExperimentSpec,
    rows: Sequence[Mapping[str, Any]],
    out: Path,
    *,
    quick: bool = False,
    audit_failures: Mapping[str, Sequence[str]] | None = None,
    notes: Sequence[str] = (),
    timeline: Sequence[Mapping[str, Any]] = (),
) -> ReportPaths:
    """Write ``results.csv``, the plots and ``report.md`` for ``rows`` under ``out``, and
    ``timeline.csv`` when there are ``timeline`` rows (per run and second).

    ``audit_failures`` maps a run (``point P repeat R: knobs``) to its violations, listed in
    the report; ``notes`` are extra lines for its head (e.g. the workload).
    """
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(rows, out / "results.csv")
    timeline_path = write_csv(timeline, out / "timeline.csv") if timeline else None
    table = mean_table(rows, spec.knobs)
    plots = tuple(
        timeline_plot(timeline, p, out / p.file_name, spec.knobs)
        if p.kind == "timeline"
        else plot(table, rows, p, out / p.file_name)
        for p in spec.plots
    )
    best = best_point(table, spec.report)
    found = knees(table, spec)
    lines = [f"# Experiment `{spec.name}`{' (quick)' if quick else ''}", ""]
    if spec.description:
        lines += [" ".join(spec.description.split()), ""]
    lines += [
        f"- source: `{spec.source}`; via: {spec.via}; repeats: {spec.repeats}; "
        f"written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        *(f"- {note}" for note in notes),
        "",
        "## Results (mean over repeats; counts summed)",
        "",
        markdown_table(table, spec.knobs),
        "",
        "`L` is the mean number of operations in flight and `λW` the rate of operations "
        "ending times their mean latency, over the steady part of each run (Little's law: "
        "the two agree in a steady state).",
        "",
        "## Best point",
        "",
    ]
    rule = f"the {'highest' if spec.report.goal == 'max' else 'lowest'} mean {spec.report.metric}"
    rule += " among points whose audit passed"
    if spec.report.slo_p99_ms is not None:
        rule += f" and whose p99 is within {spec.report.slo_p99_ms:g} ms"
    if best is None:
        lines.append(f"None: no point qualifies ({rule}).")
    else:
        value = _cell(_number(best.get(spec.report.metric)))
        lines.append(
            f"{_describe_point(best, spec.knobs)}: {spec.report.metric} = {value} ({rule})."
        )
    lines += ["", "## Knee", ""]
    lines.append(
        f"The knee of mean {spec.report.knee_metric} along {spec.report.x or '-'}: the value "
        "farthest from the straight line between the first and last points, both axes scaled "
        f"to [0, 1] (y by its range), if at least {KNEE_MIN_DISTANCE} away (Kneedle)."
    )
    lines.append("")
    for knee in found:
        where = "" if knee.series == "all" else f"{knee.series}: "
        distance = "" if knee.distance is None else f" (distance {knee.distance:.2f})"
        if knee.x is None:
            lines.append(f"- {where}none, {knee.note}{distance}")
        else:
            lines.append(f"- {where}{spec.report.x} = {format_value(knee.x)}{distance}")
    if consistency.recorded(rows):
        lines += ["", *consistency.markdown_section(table, spec.knobs, _cell)]
    lines += ["", "## Audit", ""]
    if audit_failures:
        for run, violations in audit_failures.items():
            lines.append(f"- {run}: **failed**")
            lines += [f"  - {v}" for v in violations]
    elif all(bool(row.get("audit_ok")) for row in rows):
        lines.append("Every run's invariant audit passed.")
    else:
        lines.append("**Some runs' audits failed** (see `audit_ok` in results.csv).")
    if plots:
        lines += ["", "## Plots", ""]
        for p, path in zip(spec.plots, plots, strict=True):
            lines += [f"![{p.title or path.stem}]({path.name})", ""]
    lines += ["", f"Every run: `{csv_path.name}`."]
    if timeline_path is not None:
        lines[-1] += f" Every run, second by second: `{timeline_path.name}`."
    report_path = out / "report.md"
    report_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ReportPaths(
        out=out, csv=csv_path, plots=plots, report=report_path, timeline=timeline_path
    )
