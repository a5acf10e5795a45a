"""Trace context across actor calls: a traced caller's span reaches the callee's method, batched
or not, in process or (by signature) over Ray; untraced calls carry nothing; every actor method
takes the context."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ray._common.signature import extract_signature

from actors.base import ActorBase
from actors.batching import Call, CallBatcher, run_calls
from actors.cell import Cell
from actors.endpoints import LocalEndpoint
from actors.metrics import NoMetrics, takes_trace, timed_calls
from actors.remote import Remote
from marketplace import tracing
from marketplace.domain.errors import NotFound

pytestmark = pytest.mark.unit

_EXPORTER = InMemorySpanExporter()


def _provider() -> None:
    """One SDK provider for this process (OpenTelemetry allows setting it once), exporting to
    memory; spans exist only under a root a test starts itself."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._test_exporter = True  # type: ignore[attr-defined]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _provider()
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


class Echo:
    """Stands in for an actor: methods wrapped as an actor's are."""

    def __init__(self) -> None:
        self.metrics = NoMetrics("test", "echo")

    async def echo(self, value: int) -> int:
        with tracing.step("inner"):
            await asyncio.sleep(0)
        return value

    async def missing(self, key: str) -> None:
        raise NotFound(f"no {key}")


timed_calls(Echo)


def _by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def _recording_batcher(target: Echo) -> tuple[CallBatcher[Echo], list[list[Call]]]:
    """A batcher that runs its batches on ``target`` in process, and the batches it sent."""
    sent: list[list[Call]] = []

    async def send(calls: list[Call]) -> list[tuple[bool, Any]]:
        sent.append(calls)
        return await run_calls(target, calls)

    return CallBatcher(send, kind="echo"), sent


async def test_a_batched_call_carries_its_span_to_the_callee(spans: InMemorySpanExporter) -> None:
    batcher, sent = _recording_batcher(Echo())
    with trace.get_tracer("test").start_as_current_span("root") as root:
        answers = await asyncio.gather(batcher.call(Echo.echo, 1), batcher.call(Echo.echo, 2))
    assert list(answers) == [1, 2]
    assert len(sent) == 1 and all(tracing.TRACE_KW in kwargs for _, _, kwargs in sent[0])

    finished = spans.get_finished_spans()
    calls = _by_name(finished, "call echo.echo")
    handled = _by_name(finished, "echo.echo")
    inner = _by_name(finished, "inner")
    assert len(calls) == len(handled) == len(inner) == 2
    root_id = root.get_span_context().span_id
    assert {_parent_of(call) for call in calls} == {root_id}
    # Each callee span is the child of its own call's span, and the step inside is its child.
    assert {_parent_of(span) for span in handled} == {_id(call) for call in calls}
    assert {_parent_of(span) for span in inner} == {_id(span) for span in handled}
    for call in calls:
        assert call.kind is trace.SpanKind.CLIENT
        (event,) = call.events
        assert event.name == tracing.SENT and (event.attributes or {})[tracing.BATCH_SIZE] == 2
    assert all(span.kind is trace.SpanKind.SERVER for span in handled)


async def test_untraced_calls_carry_nothing_and_make_no_span(
    spans: InMemorySpanExporter,
) -> None:
    target = Echo()
    batcher, sent = _recording_batcher(target)
    assert await batcher.call(Echo.echo, 3) == 3
    assert sent == [[("echo", (3,), {})]]
    assert await Remote[Echo](LocalEndpoint(target, "echo-0"), "echo").call(Echo.echo, 4) == 4
    assert spans.get_finished_spans() == ()


async def test_a_direct_call_in_process_is_traced(spans: InMemorySpanExporter) -> None:
    remote: Remote[Echo] = Remote(LocalEndpoint(Echo(), "echo-0"), "echo")
    with trace.get_tracer("test").start_as_current_span("root"):
        assert await remote.call(Echo.echo, 5) == 5
    finished = spans.get_finished_spans()
    (call,) = _by_name(finished, "call echo.echo")
    (handled,) = _by_name(finished, "echo.echo")
    assert _parent_of(handled) == _id(call)
    assert call.events == ()  # not batched: no wait for a batch


async def test_a_failed_call_marks_both_of_its_spans(spans: InMemorySpanExporter) -> None:
    target = Echo()
    batcher: CallBatcher[Echo] = CallBatcher(lambda calls: run_calls(target, calls), kind="echo")
    with trace.get_tracer("test").start_as_current_span("root"), pytest.raises(NotFound):
        await batcher.call(Echo.missing, "x")
    finished = spans.get_finished_spans()
    for name in ("call echo.missing", "echo.missing"):
        (span,) = _by_name(finished, name)
        assert not span.status.is_ok and span.status.description == "NotFound"


def _actor_classes() -> list[type]:
    import actors.wiring  # noqa: F401  (imports every actor class)

    found: list[type] = [ActorBase, Cell]
    pending = list(ActorBase.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_actor_method_takes_a_trace_context() -> None:
    """A traced caller adds the context to any call: a method that did not take it would
    fail every traced request that reaches it."""
    classes = _actor_classes()
    assert len(classes) >= 10, classes
    for cls in classes:
        for name, method in inspect.getmembers(cls, inspect.iscoroutinefunction):
            if name.startswith("_") or name in {"load", "started", "loaded", "publish_gauges"}:
                continue
            assert takes_trace(method), f"{cls.__name__}.{name}"
            # Ray checks a call's keywords against the innermost function's signature.
            params = [p.name for p in extract_signature(inspect.unwrap(method), ignore_first=True)]
            assert tracing.TRACE_KW in params, f"{cls.__name__}.{name}: {params}"
