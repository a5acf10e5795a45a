"""A run's product reads and writes, and what its recorded history shows against the point's
catalog consistency mode: the columns that put the modes side by side (the ``consistency``
built-in experiment).

Every point records its product reads and writes (``marketplace.consistency``) and checks them
against its own ``catalog_consistency``, with the configured replication delay as the lag.
``stale_reads`` counts reads that returned a version older than one acknowledged (or already
read by anyone) before the read began, whatever the mode: a strong point must have none, an
eventual one shows what its lag costs. ``session_violations`` counts reads that went back on
the reader's own writes or earlier reads (one read can count twice). ``mode_violations`` counts
the anomalies the point's mode promises against, but convergence: the load stops with the
schedule, so a product written near the end may still be on its way to a replica;
``marketplace simulate --check-consistency eventual`` and the integration tests judge that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from marketplace.consistency import History, Mode, check
from marketplace.consistency.checker import AnomalyKind
from marketplace.sim.experiments.metrics import ms
from marketplace.sim.loops import OpRecord, percentile
from marketplace.sim.operations import Browse, UpdatePrice, UpdateProduct

if TYPE_CHECKING:
    from marketplace.config import Settings

READ_KINDS = frozenset({Browse.kind})
WRITE_KINDS = frozenset({UpdatePrice.kind, UpdateProduct.kind})

CONSISTENCY_COLUMNS = (
    "reads",
    "read_rate",
    "read_p50_ms",
    "read_p99_ms",
    "writes",
    "write_p50_ms",
    "write_p99_ms",
    "stale_reads",
    "stale_read_rate",
    "session_violations",
    "mode_violations",
    "consistency_ok",
)
"""The columns this module adds to every row (see the module docstring)."""

# Not judged here: the run does not wait for replicas to converge after its last write.
_CONVERGENCE = frozenset(
    {AnomalyKind.NOT_CONVERGED, AnomalyKind.SLOW_CONVERGENCE, AnomalyKind.NO_FINAL_READ}
)


def consistency_columns(
    records: Sequence[OpRecord], elapsed: float, history: History, settings: Settings
) -> dict[str, Any]:
    """The consistency columns of a run lasting ``elapsed`` seconds (latencies in ms)."""
    done = [(r, r.latency) for r in records if r.latency is not None]
    reads = [latency for r, latency in done if r.kind in READ_KINDS]
    read_ok = sum(1 for r, _ in done if r.kind in READ_KINDS and r.outcome.ok)
    writes = [latency for r, latency in done if r.kind in WRITE_KINDS]
    mode = Mode(settings.catalog_consistency.value)
    result = check(history, mode, lag_s=settings.replication_delay_ms / 1000.0)
    stale = result.count(AnomalyKind.STALE_READ)
    session = result.count(AnomalyKind.READ_YOUR_WRITES) + result.count(AnomalyKind.MONOTONIC_READS)
    broken = sum(n for kind, n in result.violations.items() if kind not in _CONVERGENCE)
    return {
        "reads": read_ok,
        "read_rate": round(read_ok / elapsed, 3) if elapsed > 0 else None,
        "read_p50_ms": ms(percentile(reads, 50)),
        "read_p99_ms": ms(percentile(reads, 99)),
        "writes": sum(1 for r, _ in done if r.kind in WRITE_KINDS and r.outcome.ok),
        "write_p50_ms": ms(percentile(writes, 50)),
        "write_p99_ms": ms(percentile(writes, 99)),
        "stale_reads": stale,
        "stale_read_rate": round(stale / result.reads, 5) if result.reads else None,
        "session_violations": session,
        "mode_violations": broken,
        "consistency_ok": broken == 0,
    }


# The report's consistency table: its columns and headers.
_TABLE = (
    ("reads", "reads"),
    ("read_rate", "reads/s"),
    ("read_p99_ms", "read p99 ms"),
    ("write_p50_ms", "write p50 ms"),
    ("write_p99_ms", "write p99 ms"),
    ("stale_read_rate", "stale reads %"),
    ("session_violations", "session violations"),
)


def _percent(share: Any) -> str:
    return "-" if share is None else f"{100.0 * float(share):.1f}"


def recorded(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any run made product reads or writes worth a consistency section."""
    return any((row.get("reads") or 0) + (row.get("writes") or 0) > 0 for row in rows)


def markdown_section(
    table: Sequence[Mapping[str, Any]], knobs: Sequence[str], cell: Any
) -> list[str]:
    """The report's consistency section over the mean table (``cell`` formats a value)."""
    headers = ["point", *knobs, *(h for _, h in _TABLE), "mode kept"]
    lines = [
        "## Consistency",
        "",
        "Product reads (browses) and writes (price and product updates) of each point, and its "
        "recorded history checked against its own `catalog_consistency` (convergence is not "
        "judged: the load stops with the schedule). A replica that has not yet applied a product "
        "answers 404 (`browse:not_found` among the failures).",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    for row in table:
        cells = [cell(row["point"]), *(str(row.get(k)) for k in knobs)]
        cells += [
            _percent(row.get(column)) if column == "stale_read_rate" else cell(row.get(column))
            for column, _ in _TABLE
        ]
        cells.append(cell(bool(row.get("consistency_ok"))))
        lines.append("| " + " | ".join(cells) + " |")
    broken = [row for row in table if not row.get("consistency_ok")]
    if broken:
        lines += ["", f"**{len(broken)} point(s) broke their mode** (`mode_violations`)."]
    return [*lines, ""]
