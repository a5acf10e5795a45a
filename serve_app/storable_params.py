"""Path and query parameters the store cannot keep (``marketplace.domain.text``) answered 422
before any route runs: an id or a search term holding U+0000 would otherwise reach PostgreSQL,
which refuses it with an error that is not the caller's fault to read (a 500)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace.domain.text import UNSTORABLE
from serve_app import problems


class RefuseUnstorableParams:
    """422 for a request whose path or query string holds U+0000, raw or percent-encoded.
    (Bodies are checked by their models, ``serve_app.schemas.Strict``; an unpaired surrogate
    cannot reach a path or a query, which are decoded as UTF-8 with replacement.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _holds_nul(scope):
            response = problems.problem(
                422, f"the path or query {UNSTORABLE}", code="validation_failed"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _holds_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string") or b""
    raw_path: bytes = scope.get("raw_path") or b""
    return (
        "\x00" in scope.get("path", "")
        or b"\x00" in query
        or b"%00" in query
        or b"\x00" in raw_path
        or b"%00" in raw_path
    )
