"""Where a process's spans go: a JSON-lines file per process by default, OTLP when configured.

``configure`` installs OpenTelemetry's SDK tracer provider once per process (a gateway replica,
an actor, a cell), sampling as ``MARKETPLACE_TRACE_SAMPLE`` says. Only the gateway starts
traces (a fraction of requests); everything downstream follows its caller's decision, so a
trace is whole or absent. With sampling 0 (the default) nothing is installed and the API stays
the no-op it is.

Files: ``<trace_dir>/<process>-<pid>.jsonl``, one span per line in a compact form that
``marketplace.trace_files`` reads back (``marketplace trace ORDER_ID``). OTLP: spans go to
``MARKETPLACE_OTLP_ENDPOINT`` (an OTLP/HTTP traces URL such as
``http://otel-collector:4318/v1/traces``) instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

from marketplace.config import Settings

# Spans reach their file within this long (the SDK's default is 5 s): `marketplace trace`
# right after a checkout should find it.
EXPORT_DELAY_MS = 500
PROCESS = "marketplace.process"

log = logging.getLogger(__name__)
_configured: TracerProvider | None = None
_lock = threading.Lock()


class JsonLinesExporter(SpanExporter):
    """Spans appended to one file, a JSON object per line (``marketplace.trace_files``)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._out: IO[bytes] | None = path.open("ab")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``, one line each."""
        if self._out is None:
            return SpanExportResult.FAILURE
        self._out.write(b"".join(orjson.dumps(span_record(span)) + b"\n" for span in spans))
        self._out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is flushed as it is written."""
        return True


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The compact form of ``span`` that the files hold: ids in hex, times in ns since the
    epoch, the process it ran in."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "start": span.start_time,
        "end": span.end_time,
        "error": span.status.description if not span.status.is_ok else None,
        "attributes": dict(span.attributes or {}),
        "events": [
            {
                "name": event.name,
                "time": event.timestamp,
                "attributes": dict(event.attributes or {}),
            }
            for event in span.events
        ],
        "process": span.resource.attributes.get(PROCESS),
        "pid": os.getpid(),
    }


def trace_dir(settings: Settings) -> Path:
    """Where this marketplace's span files go (``MARKETPLACE_TRACE_DIR``, by default
    ``.marketplace/traces``)."""
    return Path(settings.trace_dir) if settings.trace_dir else settings.state_dir / "traces"


def configure(settings: Settings, process: str, *, root: bool = False) -> TracerProvider | None:
    """Install this process's tracer provider per ``settings`` (once; later calls return the
    first). ``root`` is for the gateway: it samples new traces at ``trace_sample``; other
    processes only continue traces they are called in. None when tracing is off."""
    global _configured
    if settings.trace_sample <= 0:
        return None
    with _lock:
        if _configured is not None:
            return _configured
        sampler = ParentBased(TraceIdRatioBased(settings.trace_sample) if root else ALWAYS_OFF)
        provider = TracerProvider(
            sampler=sampler,
            resource=Resource.create(
                {
                    "service.name": "marketplace",
                    "service.namespace": settings.namespace,
                    PROCESS: process,
                }
            ),
        )
        try:
            exporter = _exporter(settings, process)
        except OSError as exc:  # a read-only or missing folder: serve untraced, and say why
            log.warning("tracing is off in %s: cannot write spans (%r)", process, exc)
            return None
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS)
        )
        trace.set_tracer_provider(provider)
        _configured = provider
        return provider


def _exporter(settings: Settings, process: str) -> SpanExporter:
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in process)
    return JsonLinesExporter(trace_dir(settings) / f"{name}-{os.getpid()}.jsonl")
