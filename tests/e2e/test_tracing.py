"""A checkout's trace across processes: the gateway's span at the root, then the coordinator,
its saga steps and each actor they call (inventory, payments, shipments), every span under its
caller's, read back from the span files as `marketplace trace` reads them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from marketplace.cli import app
from marketplace.trace_export import trace_dir
from marketplace.trace_files import CATEGORIES, Span, Trace, breakdown, matching, read_spans, traces
from tests.e2e.conftest import signup
from tests.e2e.support import checkout, create_product, ok, settled_order

pytestmark = pytest.mark.e2e

# The hops a confirmed checkout's trace holds, each under the one before it.
CHAINS = [
    ["call orders.place_order", "orders.place_order", "saga.reserve", "call inventory.reserve",
     "inventory.reserve", "store.commit"],
    ["orders.place_order", "saga.charge", "call payments.charge", "payments.charge"],
    ["orders.place_order", "saga.commit", "call inventory.commit", "inventory.commit"],
    ["orders.place_order", "saga.ship", "call shipments.open_shipment",
     "shipments.open_shipment"],
]  # fmt: skip


async def _whole_trace(directory: Path, order_id: str, timeout_s: float = 15.0) -> Trace:
    """The order's trace once every hop is in the files (spans are written within a second
    of ending, by each process on its own)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = matching(_traces(directory), order_id)
        names = {span.name for one in found for span in one.spans}
        if found and all(name in names for chain in CHAINS for name in chain):
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"trace of {order_id} incomplete after {timeout_s} s: {names}")
        await asyncio.sleep(0.25)


def _traces(directory: Path) -> list[Trace]:
    return traces(read_spans(directory)) if directory.is_dir() else []


def _child(span: Span, name: str) -> Span:
    named = [child for child in span.children if child.name == name]
    assert named, f"{span.name} has no child {name}: {[c.name for c in span.children]}"
    return named[0]


async def test_a_checkout_is_traced_from_the_gateway_through_every_actor(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    seller = await signup(http, "seller")
    buyer = await signup(http, "buyer")
    product = await create_product(http, seller, initial_stock=5)
    reply = await checkout(http, buyer, [(product["id"], 2)])
    order = await settled_order(http, buyer, reply)
    assert order["status"] == "confirmed", order

    directory = trace_dir(served["settings"])
    trace = await _whole_trace(directory, order["id"])
    assert reply.headers["x-trace-id"] == trace.trace_id
    # One root, the gateway's; every other span's parent is in the trace.
    assert [root.name for root in trace.roots] == ["POST /v1/orders"], trace.roots
    root = trace.roots[0]
    assert root.process == "gateway" and root.kind == "server"
    assert root.attributes["http.response.status_code"] == 201
    assert not trace.orphans

    for chain in CHAINS:
        span = root if chain[0].startswith("call ") else _find(trace, chain[0])
        for name in chain:
            span = span if span.name == name else _child(span, name)
            # A child starts and ends inside its parent (one clock per machine).
            parent = _parent(trace, span)
            if parent is not None:
                assert parent.start <= span.start and span.end <= parent.end, (parent, span)
    # Calls cross processes: a client span in the caller, its server span in the callee.
    place = _find(trace, "orders.place_order")
    assert place.process is not None and place.process.startswith("orders-")
    assert place.attributes["marketplace.order_id"] == order["id"]
    reserve = _find(trace, "inventory.reserve")
    assert reserve.process is not None and reserve.process.startswith("inventory-")
    assert reserve.pid != place.pid != root.pid
    # Batched calls say when their batch left and how big it was.
    call = _find(trace, "call inventory.reserve")
    assert call.batch_size is not None and call.batch_size >= 1
    assert call.sent is not None and call.start <= call.sent <= call.end

    parts = breakdown(trace)
    assert set(parts) == set(CATEGORIES)
    for part in ("gateway", "ray call", "actor work", "commit"):
        assert parts[part] > 0, parts
    assert sum(parts.values()) >= trace.seconds * 0.5

    # What a user types: the tree, by order id, and where the time went.
    shown = CliRunner().invoke(app, ["trace", order["id"], "--dir", str(directory)])
    assert shown.exit_code == 0, shown.output
    for name in ("POST /v1/orders", "saga.charge", "payments.charge", "store.commit"):
        assert name in shown.output
    assert "Where the time went" in shown.output and "queued" in shown.output
    listed = CliRunner().invoke(app, ["trace", "--dir", str(directory)])
    assert listed.exit_code == 0 and trace.trace_id in listed.output


async def test_a_refused_request_is_traced_with_its_status(
    http: httpx.AsyncClient, served: dict[str, Any]
) -> None:
    buyer = await signup(http, "buyer")
    reply = await http.get(f"/v1/orders/ord_{'0' * 32}", headers=buyer["headers"])
    assert reply.status_code == 404
    trace_id = reply.headers["x-trace-id"]
    directory = trace_dir(served["settings"])
    deadline = time.monotonic() + 15
    while True:
        found = [t for t in _traces(directory) if t.trace_id == trace_id]
        names = {s.name for t in found for s in t.spans}
        if {"orders.get_order", "GET /v1/orders/{order_id}"} <= names:
            break
        assert time.monotonic() < deadline, names
        await asyncio.sleep(0.25)
    root = found[0].roots[0]
    assert root.name == "GET /v1/orders/{order_id}"
    assert root.attributes["http.response.status_code"] == 404
    # The coordinator's answer was a domain error: the call's spans say which.
    assert _find(found[0], "orders.get_order").error == "NotFound"
    ok(await http.get("/v1/health"))


def _find(trace: Trace, name: str) -> Span:
    named = [span for span in trace.spans if span.name == name]
    assert named, f"no {name} in {[s.name for s in trace.spans]}"
    return named[0]


def _parent(trace: Trace, span: Span) -> Span | None:
    return next((s for s in trace.spans if s.span_id == span.parent_id), None)
