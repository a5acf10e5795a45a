"""Span files written and read back, traces linked, where the time went counted, and OTLP export
to a real HTTP endpoint; `marketplace trace` on files."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context
from typer.testing import CliRunner

from marketplace.cli import app
from marketplace.config import Settings
from marketplace.trace_export import PROCESS, JsonLinesExporter, _exporter, configure
from marketplace.trace_files import (
    Span,
    breakdown,
    matching,
    read_spans,
    traces,
)
from marketplace.tracing import BATCH_SIZE, ORDER_ID, SENT

pytestmark = pytest.mark.unit
MS = 1_000_000


def _span(span_id: str, parent: str | None, name: str, start: int, end: int, **more: Any) -> Span:
    return Span(
        trace_id="a" * 32,
        span_id=span_id,
        parent_id=parent,
        name=name,
        kind=more.pop("kind", "internal"),
        start=start * MS,
        end=end * MS,
        **more,
    )


def test_spans_written_by_the_exporter_read_back_as_one_linked_trace(tmp_path: Path) -> None:
    provider = TracerProvider(resource=Resource.create({PROCESS: "orders-0"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(tmp_path / "a-1.jsonl")))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        root.set_attribute(ORDER_ID, "ord_1")
        call = tracer.start_span("call inventory.reserve", kind=SpanKind.CLIENT)
        call.add_event(SENT, {BATCH_SIZE: 3})
        handled = tracer.start_span("inventory.reserve", context=set_span_in_context(call))
        handled.end()
        call.end()
    provider.shutdown()
    # A line cut short by a killed process is skipped.
    with (tmp_path / "b-2.jsonl").open("ab") as out:
        out.write(b'{"trace_id": "ab')

    (one,) = traces(read_spans(tmp_path))
    assert one.order_ids == ["ord_1"] and not one.orphans
    (top,) = one.roots
    assert top.name == "root" and top.kind == "server" and top.process == "orders-0"
    (client,) = top.children
    assert client.kind == "client" and client.batch_size == 3
    assert client.sent is not None and client.start <= client.sent <= client.end
    assert [child.name for child in client.children] == ["inventory.reserve"]
    assert matching([one], "ord_1") == [one] == matching([one], one.trace_id.upper())
    assert matching([one], "ord_2") == []


def test_own_time_leaves_out_what_children_cover_once_even_when_they_overlap() -> None:
    parent = _span("1", None, "saga", 0, 100)
    parent.children = [
        _span("2", "1", "commit", 10, 50),
        _span("3", "1", "ship", 30, 70),  # overlaps the first: covered once
        _span("4", "1", "late", 90, 120),  # ends after its parent: only its part inside counts
    ]
    assert parent.own_seconds() == pytest.approx(0.030)  # 0-10, 70-90


def test_where_the_time_went_splits_a_call_into_queueing_and_the_ray_call() -> None:
    spans = [
        _span("1", None, "POST /v1/orders", 0, 100, kind="server", process="gateway"),
        _span(
            "2",
            "1",
            "call orders.place_order",
            10,
            90,
            kind="client",
            process="gateway",
            events=[{"name": SENT, "time": 15 * MS, "attributes": {BATCH_SIZE: 1}}],
        ),
        _span("3", "2", "orders.place_order", 20, 80, kind="server", process="orders-0"),
        _span("4", "3", "store.commit", 30, 70, process="orders-0"),
        _span("5", "9", "inventory.reserve", 40, 50, kind="server", process="inventory-0"),
    ]
    (one,) = traces(spans)
    assert [s.span_id for s in one.orphans] == ["5"]
    parts = breakdown(one)
    assert parts["gateway"] == pytest.approx(0.020)  # 100 - 80 covered by its call
    assert parts["queued"] == pytest.approx(0.005)
    assert parts["ray call"] == pytest.approx(0.015)  # 80 - 60 of the callee - 5 queued
    assert parts["commit"] == pytest.approx(0.040)
    assert parts["actor work"] == pytest.approx(0.020 + 0.010)  # place_order's own, the orphan


def test_tracing_off_installs_nothing() -> None:
    assert configure(Settings(trace_sample=0.0), "gateway", root=True) is None


def test_a_folder_spans_cannot_be_written_to_turns_tracing_off_rather_than_failing(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    settings = Settings(trace_sample=1.0, trace_dir=str(blocked / "traces"))
    assert configure(settings, "orders-0") is None


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


def test_spans_go_to_an_otlp_endpoint_when_one_is_configured(collector: str) -> None:
    exporter = _exporter(Settings(trace_sample=1.0, otlp_endpoint=collector), "gateway")
    provider = TracerProvider(resource=Resource.create({PROCESS: "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("POST /v1/orders"):
        pass
    provider.shutdown()
    ((path, body),) = _Collector.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    names = [s.name for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert names == ["POST /v1/orders"]


def test_the_trace_command_explains_what_it_cannot_find(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["trace", "ord_1", "--dir", str(tmp_path / "none")])
    assert missing.exit_code != 0 and "--trace-sample" in missing.output
    (tmp_path / "x-1.jsonl").write_bytes(
        orjson.dumps(
            {
                "trace_id": "b" * 32,
                "span_id": "1",
                "parent_id": None,
                "name": "GET /v1/health",
                "kind": "server",
                "start": 0,
                "end": MS,
                "process": "gateway",
            }
        )
        + b"\n"
    )
    unknown = CliRunner().invoke(app, ["trace", "ord_1", "--dir", str(tmp_path)])
    assert unknown.exit_code != 0 and "1 traces there" in unknown.output
    shown = CliRunner().invoke(app, ["trace", "b" * 32, "--dir", str(tmp_path)])
    assert shown.exit_code == 0 and "GET /v1/health" in shown.output, shown.output
