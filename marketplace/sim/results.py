"""A simulation's results folder: what happened to every operation, second by second, in CSV,
JSON and two plots.

``write_results(folder, result, ...)`` writes

- ``ops.csv``: one row per operation (kind, intended/started/ended seconds, latency ms, ok, reason);
- ``kinds.csv``: per operation kind, counts and latency percentiles;
- ``timeline.csv``: per second, operations offered (by intended start) and completed ok or failed
  (by end), and the p50/p99 latency of those intended in it (a stall shows in both);
- ``throughput.png`` (offered against achieved per second) and ``latency.png`` (p50 and p99
  per second, log scale);
- ``summary.json``: the config, the summary, the anomalies and the audit.

``anomalies(records)`` counts failed operations by kind and reason; the runtime's own saga
counters (how checkouts ended) are added by the caller, which has the client.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from marketplace.sim.loops import OpRecord, RunResult, percentile

CSV_FILES = ("ops.csv", "kinds.csv", "timeline.csv")
PLOTS = ("throughput.png", "latency.png")


@dataclass(frozen=True, slots=True)
class Second:
    """One second of the run.

    ``offered`` and ``dropped`` count operations intended to start in it, and the latencies are
    theirs (so a stall shows against the operations it delayed); ``ok`` and ``failed`` count
    operations that ended in it (so a stall shows as a gap in completions).
    """

    second: int
    offered: int
    dropped: int
    ok: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None
    checkout_p99_ms: float | None


def timeline(records: Sequence[OpRecord], elapsed: float) -> list[Second]:
    """Per second, from 0 to the run's end."""
    intended: defaultdict[int, list[OpRecord]] = defaultdict(list)
    ended: defaultdict[int, list[OpRecord]] = defaultdict(list)
    for record in records:
        intended[int(record.intended)].append(record)
        if record.ended is not None:
            ended[int(record.ended)].append(record)
    last = max((*intended, *ended), default=-1)
    rows = []
    for second in range(max(math.ceil(elapsed), last + 1)):
        started = intended.get(second, [])
        finished = ended.get(second, [])
        latencies = [r.latency for r in started if r.latency is not None]
        checkouts = [r.latency for r in started if r.latency is not None and r.kind == "checkout"]
        ok = sum(1 for r in finished if r.outcome.ok)
        rows.append(
            Second(
                second=second,
                offered=len(started),
                dropped=sum(1 for r in started if r.started is None),
                ok=ok,
                failed=len(finished) - ok,
                p50_ms=_ms_or_none(percentile(latencies, 50)),
                p99_ms=_ms_or_none(percentile(latencies, 99)),
                checkout_p99_ms=_ms_or_none(percentile(checkouts, 99)),
            )
        )
    return rows


def _ms_or_none(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def anomalies(records: Sequence[OpRecord]) -> dict[str, int]:
    """Failed operations counted by ``kind:reason``, most frequent first."""
    counts = Counter(
        f"{record.kind}:{record.outcome.reason}" for record in records if not record.outcome.ok
    )
    return dict(counts.most_common())


def outcome_reasons(records: Sequence[OpRecord]) -> dict[str, int]:
    """Operations that ended ok with a note (e.g. a carrier with nothing to move: ``idle``)."""
    counts = Counter(
        f"{record.kind}:{record.outcome.reason}"
        for record in records
        if record.outcome.ok and record.outcome.reason
    )
    return dict(counts.most_common())


def write_results(
    folder: Path,
    result: RunResult,
    *,
    config: Mapping[str, Any],
    saga_counters: Mapping[str, int] | None = None,
    audit: Mapping[str, Any] | None = None,
    title: str = "simulation",
    faults: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the results folder (created if missing) and return what ``summary.json`` holds.

    ``faults`` are the rows of a fault plan's recoveries (``marketplace.sim.faults.recovery``):
    written to ``faults.csv`` and marked on the plots. ``extra`` goes into the summary as is.
    """
    folder.mkdir(parents=True, exist_ok=True)
    records = result.records
    _write_ops(folder / "ops.csv", records)
    _write_kinds(folder / "kinds.csv", result)
    seconds = timeline(records, result.summary.elapsed)
    _write_rows(folder / "timeline.csv", [asdict(second) for second in seconds])
    spans = [
        (f"{f['id']} {f['fault']}"[:40], float(f["applied_s"]), float(f["lifted_s"]))
        for f in faults
    ]
    plot_throughput(folder / "throughput.png", seconds, title, spans)
    plot_latency(folder / "latency.png", seconds, title, spans)
    if faults:
        _write_rows(
            folder / "faults.csv",
            [{**row, "error_reasons": json.dumps(row["error_reasons"])} for row in faults],
        )
    summary = result.summary
    body: dict[str, Any] = {
        "config": dict(config),
        "elapsed_s": summary.elapsed,
        "offered_rate": summary.offered_rate,
        "achieved_rate": summary.achieved_rate,
        "total": summary.total,
        "ok": summary.ok,
        "failed": summary.failed,
        "dropped": summary.dropped,
        "kinds": {kind: asdict(stats) for kind, stats in summary.kinds.items()},
        "anomalies": anomalies(records),
        "notes": outcome_reasons(records),
        "saga_counters": dict(saga_counters or {}),
        "audit": dict(audit) if audit is not None else None,
        "faults": [dict(row) for row in faults],
        **dict(extra or {}),
    }
    (folder / "summary.json").write_text(json.dumps(body, indent=2, default=str) + "\n")
    return body


def _write_ops(path: Path, records: Sequence[OpRecord]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        header = ["kind", "intended_s", "started_s", "ended_s", "latency_ms", "ok", "reason"]
        writer.writerow(header)
        for r in records:
            writer.writerow(
                [
                    r.kind,
                    f"{r.intended:.6f}",
                    "" if r.started is None else f"{r.started:.6f}",
                    "" if r.ended is None else f"{r.ended:.6f}",
                    "" if r.latency is None else f"{r.latency * 1000:.3f}",
                    int(r.outcome.ok),
                    r.outcome.reason or "",
                ]
            )


def _write_kinds(path: Path, result: RunResult) -> None:
    rows = []
    for kind, stats in result.summary.kinds.items():
        rows.append(
            {
                "kind": kind,
                "count": stats.count,
                "ok": stats.ok,
                "failed": stats.failed,
                "dropped": stats.dropped,
                "p50_ms": _ms(stats.p50),
                "p99_ms": _ms(stats.p99),
            }
        )
    _write_rows(path, rows)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.3f}"


def _write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as out:
        if not rows:
            return
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


Span = tuple[str, float, float]
"""A fault marked on a plot: its label, and when it was applied and lifted (seconds)."""


def mark_faults(ax: Any, spans: Sequence[Span]) -> None:
    """Shade each fault's window on ``ax`` (a line for an instantaneous one, a kill) and
    label it at the top."""
    for label, applied, lifted in spans:
        if lifted - applied >= 0.5:
            ax.axvspan(applied, lifted, color="tab:red", alpha=0.12)
        else:
            ax.axvline(applied, color="tab:red", alpha=0.6, linestyle=":")
        ax.annotate(
            label,
            xy=(applied, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
            rotation=90,
            va="top",
        )


def plot_throughput(
    path: Path, seconds: Sequence[Second], title: str, faults: Sequence[Span] = ()
) -> None:
    """Operations offered per second (by intended start) against those that completed ok and
    those that failed (by end): a stall shows as completions falling behind the offer. Faults,
    when given, are marked where they applied."""
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    mark_faults(ax, faults)
    xs = [s.second for s in seconds]
    ax.plot(xs, [s.offered for s in seconds], label="offered", color="grey", linestyle="--")
    ax.plot(xs, [s.ok for s in seconds], label="completed ok", color="tab:blue")
    ax.plot(xs, [s.failed for s in seconds], label="failed", color="tab:red")
    if any(s.dropped for s in seconds):
        ax.plot(xs, [s.dropped for s in seconds], label="dropped", color="tab:purple")
    ax.set_xlabel("second of the run")
    ax.set_ylabel("operations / s")
    ax.set_title(f"Throughput: {title}")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_latency(
    path: Path, seconds: Sequence[Second], title: str, faults: Sequence[Span] = ()
) -> None:
    """p50 and p99 latency of the operations intended in each second, and checkouts' p99
    (log scale): what a user arriving in that second waited. Faults are marked as above."""
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    mark_faults(ax, faults)
    lines = (
        ("p50_ms", "p50, all", "tab:blue", "-"),
        ("p99_ms", "p99, all", "tab:orange", "-"),
        ("checkout_p99_ms", "p99, checkout", "tab:green", "--"),
    )
    for attr, label, color, style in lines:
        points = [(s.second, getattr(s, attr)) for s in seconds if getattr(s, attr) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=label, color=color, linestyle=style, marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("second of the run (by intended start)")
    ax.set_ylabel("latency from intended start (ms)")
    ax.set_title(f"Latency: {title}")
    ax.legend(loc="best")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
