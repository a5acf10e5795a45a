"""The gateway's span of each traced request: the root of a checkout's trace.

A sampled request (``MARKETPLACE_TRACE_SAMPLE``) gets a server span named by its method and
route template (``POST /v1/orders``); the actor calls it makes are its children
(``marketplace.tracing``), and its answer carries the trace's id in ``X-Trace-Id`` so that a
client can ask ``marketplace trace`` for it. Incoming ``traceparent`` headers are ignored: a
client does not decide what the marketplace traces.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.metrics import route_label

TRACE_ID_HEADER = b"x-trace-id"
_TRACER = trace.get_tracer("marketplace.gateway")


class TraceRequests:
    """Open a server span per request (sampled by the replica's tracer provider)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with _TRACER.start_as_current_span(
            method,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if not span.is_recording():
                await self.app(scope, receive, send)
                return
            trace_id = format(span.get_span_context().trace_id, "032x").encode()

            async def answer(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, str(status)))
                    headers = list(message.get("headers", []))
                    headers.append((TRACE_ID_HEADER, trace_id))
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await self.app(scope, receive, answer)
            finally:
                route = route_label(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
