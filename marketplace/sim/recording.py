"""Recording the catalog reads and writes a simulation makes, for the consistency checker.

Off by default. A target given a ``History`` (``ClientTarget(..., history=h)``, ``HttpTarget(...,
history=h)``) records each ``Browse`` as a read and each ``UpdatePrice`` and ``UpdateProduct``
as a write of the product, under the market's product id and the acting user's email (one
session per customer or seller), with the version the answer carried (the product's
``version``; over HTTP its ETag). A refusal by the market records a failed operation; anything
else that goes wrong (a 5xx, a timeout, a lost call) an unknown one, since the write may have
been applied. ``marketplace.consistency.check(h, mode)`` then judges the run, and
``verdict_summary`` turns its verdict into the ``consistency`` entry of ``summary.json``
(``marketplace simulate --check-consistency MODE``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from marketplace.consistency.checker import CheckResult
from marketplace.consistency.history import Call, History, Kind


def recording(
    history: History | None,
    actor: str,
    kind: Kind,
    product_id: str,
    refused: Callable[[BaseException], bool],
) -> AbstractContextManager[Call]:
    """``history.recording(...)``, or with no history a ``Call`` that nobody reads."""
    if history is None:
        return nullcontext(Call())
    return history.recording(actor, kind, product_id, refused=refused)


def verdict_summary(result: CheckResult) -> dict[str, Any]:
    """A check's verdict as JSON-ready data: the mode, ok, counts by kind, totals, the slowest
    convergence (eventual) and each kind's examples in words."""
    return {
        "mode": result.mode.value,
        "ok": result.ok,
        "violations": {kind.value: n for kind, n in sorted(result.violations.items())},
        "informative": {kind.value: n for kind, n in sorted(result.informative.items())},
        "operations": result.operations,
        "reads": result.reads,
        "writes": result.writes,
        "products": result.products,
        "max_lag_s": result.max_lag_s,
        "examples": {
            kind.value: [str(example) for example in examples]
            for kind, examples in sorted(result.examples.items())
        },
    }
