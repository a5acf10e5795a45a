"""Traces read back from the span files (``marketplace.trace_export``), and where their time went.

A trace is the spans of one request: the gateway's server span at the root, a client span per
actor call (``call inventory.reserve``: from the call until its answer, with a ``sent`` event
when its batch left), the callee's server span under it (``inventory.reserve``), and inside
those the saga's steps (``saga.reserve``) and the waits for a commit (``store.commit``).

Where the time went is counted from each span's own time, its duration less the time covered
by its children:

- ``gateway``: the gateway's own time (routing, validation, tokens, serialization);
- ``queued``: a call waiting for its batch to leave (up to its ``sent`` event);
- ``ray call``: the rest of a call's own time: serialization, Ray's transport and the callee's
  mailbox, both ways;
- ``actor work``: an actor's own time in a call or a saga step (locks and peers' answers are
  children or waits);
- ``commit``: waiting for the group commit that stores a change, the commit included.

Hops that ran at the same time (a saga's commit and ship) are both counted, so the parts can
add up to more than the request's duration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from marketplace.tracing import BATCH_SIZE, ORDER_ID, SENT

CATEGORIES = ("gateway", "queued", "ray call", "actor work", "commit")


@dataclass
class Span:
    """One span as its file holds it (``trace_export.span_record``)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start: int
    end: int
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    process: str | None = None
    pid: int | None = None
    children: list[Span] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """How long the span lasted."""
        return (self.end - self.start) / 1e9

    @property
    def sent(self) -> int | None:
        """When a batched call's batch left (ns), if it was batched."""
        for event in self.events:
            if event.get("name") == SENT:
                return int(event["time"])
        return None

    @property
    def batch_size(self) -> int | None:
        """How many calls shared the batch this call left in."""
        for event in self.events:
            if event.get("name") == SENT:
                size = event.get("attributes", {}).get(BATCH_SIZE)
                return int(size) if size is not None else None
        return None

    def own_seconds(self) -> float:
        """The span's time not covered by any of its children."""
        covered = 0
        reach = self.start
        for child in sorted(self.children, key=lambda c: c.start):
            begin, finish = max(child.start, reach), min(child.end, self.end)
            if finish > begin:
                covered += finish - begin
                reach = finish
        return max(0, self.end - self.start - covered) / 1e9


@dataclass
class Trace:
    """The spans of one trace, linked into trees."""

    trace_id: str
    spans: list[Span]
    roots: list[Span]

    @property
    def start(self) -> int:
        """When the trace's first span began (ns)."""
        return min(span.start for span in self.spans)

    @property
    def seconds(self) -> float:
        """From the first span's start to the last one's end."""
        return (max(span.end for span in self.spans) - self.start) / 1e9

    @property
    def order_ids(self) -> list[str]:
        """The orders the trace's spans name."""
        found = {str(s.attributes[ORDER_ID]) for s in self.spans if ORDER_ID in s.attributes}
        return sorted(found)

    @property
    def orphans(self) -> list[Span]:
        """Roots that name a parent the trace does not hold (a span lost with its process,
        or not written yet)."""
        return [span for span in self.roots if span.parent_id is not None]


def read_spans(directory: Path) -> list[Span]:
    """Every span in the ``*.jsonl`` files under ``directory``; a line cut short (a process
    killed as it wrote) is skipped."""
    spans: list[Span] = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open("rb") as lines:
            for line in lines:
                try:
                    record = orjson.loads(line)
                    spans.append(Span(**record))
                except (orjson.JSONDecodeError, TypeError):
                    continue
    return spans


def traces(spans: Iterable[Span]) -> list[Trace]:
    """``spans`` grouped by trace and linked parent to child, oldest trace first."""
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        span.children = []
        by_trace.setdefault(span.trace_id, []).append(span)
    found = []
    for trace_id, members in by_trace.items():
        by_id = {span.span_id: span for span in members}
        roots = []
        for span in sorted(members, key=lambda s: s.start):
            parent = by_id.get(span.parent_id) if span.parent_id else None
            if parent is None:
                roots.append(span)
            else:
                parent.children.append(span)
        found.append(Trace(trace_id, members, roots))
    return sorted(found, key=lambda t: t.start)


def matching(found: list[Trace], key: str) -> list[Trace]:
    """The traces whose id is ``key`` or that name the order ``key``."""
    return [t for t in found if t.trace_id == key.lower() or key in t.order_ids]


def category(span: Span) -> str:
    """The category a span's own time counts in (``CATEGORIES``; a client span splits its
    own time between ``queued`` and ``ray call``, see ``breakdown``)."""
    if span.name == "store.commit":
        return "commit"
    if span.kind == "client":
        return "ray call"
    if span.process == "gateway" and span.kind == "server":
        return "gateway"
    return "actor work"


def queued_seconds(span: Span) -> float:
    """How long a call waited for its batch to leave."""
    sent = span.sent
    return 0.0 if sent is None else max(0, sent - span.start) / 1e9


def breakdown(trace: Trace) -> dict[str, float]:
    """Seconds of the trace's spans' own time per category (``CATEGORIES``)."""
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for span in trace.spans:
        own = span.own_seconds()
        kind = category(span)
        if kind == "ray call":
            queued = min(own, queued_seconds(span))
            totals["queued"] += queued
            totals["ray call"] += own - queued
        else:
            totals[kind] += own
    return totals
