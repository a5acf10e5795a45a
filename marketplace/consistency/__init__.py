"""Recorded histories of catalog reads and writes, and a checker of consistency modes.

Part of the core: no Ray, no drivers. ``history`` records operations, ``checker`` judges them.
"""

from marketplace.consistency.checker import (
    Anomaly,
    AnomalyKind,
    CheckResult,
    Convergence,
    Mode,
    check,
)
from marketplace.consistency.history import History, Kind, Operation, Outcome, Pending

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "CheckResult",
    "Convergence",
    "History",
    "Kind",
    "Mode",
    "Operation",
    "Outcome",
    "Pending",
    "check",
]
