"""The arithmetic and number formats every benchmark shares: percentiles, rates, ratios,
medians of rounds, and a console wide enough for the tables.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of already sorted values, linearly interpolated."""
    if not sorted_values:
        return float("nan")
    position = fraction * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def nearest_rank(sorted_values: Sequence[int], fraction: float) -> int:
    """The value at the ``fraction`` rank of already sorted, non-empty counts (no interpolation:
    a queue's length stays a whole number)."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def rate(count: float, seconds: float) -> float:
    """``count`` per second; 0 for an empty window."""
    return count / seconds if seconds > 0 else 0.0


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``; None when the denominator is 0 (nothing to compare with)."""
    return numerator / denominator if denominator else None


def median_of_known(values: Iterable[float | None]) -> float | None:
    """The median of the values that were measured; None when none was."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def times(value: float) -> str:
    """A ratio with enough digits to tell small ones apart (0.012x, 0.27x, 16.8x)."""
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def pct(value: float | None) -> str:
    """A 0..1 share (or None) as a percentage."""
    return "-" if value is None else f"{value * 100:.0f}%"


def report_console(width: int) -> Console:
    """A console for a benchmark's tables: piped or captured output gets ``width`` columns
    (rich would assume 80, too narrow for every column); a terminal keeps its own width."""
    return Console(width=None if sys.stdout.isatty() else width)
