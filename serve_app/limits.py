"""Request body limit (413) as ASGI middleware."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app import problems
from serve_app.problems import ProblemError

_limit = 64 * 1024


def configure_body_limit(max_bytes: int) -> None:
    """Set this replica's body limit."""
    global _limit
    _limit = max_bytes


class BodyLimit:
    """Answer 413 to bodies over the limit, declared in Content-Length or streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = problems.problem(413, f"request body over {limit} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ProblemError(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, limited, send)
