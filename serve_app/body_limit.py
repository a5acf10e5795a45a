"""Request body limit (413) as ASGI middleware."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app import problems


class BodyLimit:
    """Answer 413 to bodies over the limit, declared in Content-Length or streamed.

    A declared length over the limit is refused before reading. A body without one (chunked)
    is read up to the limit first and then replayed to the app: failing inside the app's
    ``receive`` would reach FastAPI's body parser, which answers any read error with 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await self._refuse(limit, scope, receive, send)
                return
            # The server holds the body to its declared length.
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break  # the client went away; let the app see it
            seen += len(message.get("body", b""))
            if seen > limit:
                await self._refuse(limit, scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.problem(413, f"request body over {limit} bytes")
        await response(scope, receive, send)
