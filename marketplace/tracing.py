"""Spans of a request across processes, through the OpenTelemetry API.

A traced call carries its caller's span context in the keyword argument ``TRACE_KW`` (a W3C
``traceparent`` carrier, a dict of two short strings), and the callee opens its own span as a
child of it; ``actors`` does both ends for every actor call, batched or not, over Ray or in
process. Nothing here configures where spans go (``marketplace.trace_export`` does, per
process): without that, the API's tracer is a no-op.

Every helper first asks whether the current span is recording, so a process that traces
nothing (sampling 0, the default) pays a context lookup per call and builds no span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# The keyword argument a traced actor call carries its parent in (popped before the method
# runs, so no method sees it).
TRACE_KW = "_trace"
# Attribute names of our own (OpenTelemetry's semantic conventions have none for these).
ORDER_ID = "marketplace.order_id"
KIND = "marketplace.kind"
METHOD = "marketplace.method"
BATCH_SIZE = "marketplace.batch_size"
CHANGES = "marketplace.changes"
# The event a batched call's span gets when its batch leaves (queueing ends there).
SENT = "sent"

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("marketplace")


def recording() -> bool:
    """Whether the current span records (a sampled trace is being built in this process)."""
    return trace.get_current_span().is_recording()


def carrier(span: Span | None = None) -> dict[str, str]:
    """``span``'s context (by default the current span's), to send along with a call."""
    found: dict[str, str] = {}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _PROPAGATOR.inject(found, context=ctx)
    return found


def start_call(kind: str, method: str) -> tuple[Span, dict[str, str]] | None:
    """A client span for a call to ``kind.method``, and the carrier its callee continues from;
    None when nothing is being traced here. The caller ends the span when the answer comes."""
    if not recording():
        return None
    span = _TRACER.start_span(
        f"call {kind}.{method}",
        kind=SpanKind.CLIENT,
        attributes={KIND: kind, METHOD: method},
    )
    return span, carrier(span)


def end_call(span: Span, error: BaseException | None) -> None:
    """End a call's client span, marking it failed when ``error`` is set."""
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


@contextlib.contextmanager
def handling(parent: Mapping[str, str], kind: str, method: str) -> Iterator[None]:
    """A server span for a call to ``kind.method`` that arrived with ``parent``'s context."""
    ctx = _PROPAGATOR.extract(parent)
    with _span(f"{kind}.{method}", SpanKind.SERVER, {KIND: kind, METHOD: method}, ctx):
        yield


@contextlib.contextmanager
def step(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of the current one (a saga step, a commit); nothing when not recording."""
    if not recording():
        yield
        return
    with _span(name, SpanKind.INTERNAL, attributes, None):
        yield


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span (when it records): ``annotate(**{ORDER_ID: id})``."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def trace_id() -> str | None:
    """The current trace's id in hex, when one is being recorded."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    return format(span.get_span_context().trace_id, "032x")


@contextlib.contextmanager
def _span(
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, Any],
    ctx: otel_context.Context | None,
) -> Iterator[None]:
    # Exceptions set the status without a stack trace event: a domain error (a 404, a 409)
    # is an answer, and the trace shows which call gave it.
    with _TRACER.start_as_current_span(
        name,
        context=ctx,
        kind=kind,
        attributes=dict(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
