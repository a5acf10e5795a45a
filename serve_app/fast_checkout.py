"""``POST /v1/orders`` answered ahead of FastAPI when the request is a buyer's well-formed checkout.

A checkout's share of the gateway replica was its largest after the order coordinator's
(``marketplace/bench/README.md``): FastAPI's routing, dependency solving (the caller, the
replica, the Idempotency-Key header), validating the body from a parsed dict, and validating
and encoding the answer twice (``response_model``). Here the body is validated in one
pydantic-core call from its bytes, the bearer token verified as the dependency does, and the
work itself is the route's (``serve_app.checkout``), answered with the route's status, headers
and body, and its errors with the same problem details.

Only what FastAPI would hand to the route comes this way: a bearer token that verifies, a buyer
(or an admin), one non-blank Idempotency-Key of at most ``MAX_IDEMPOTENCY_KEY`` storable
characters, ``Content-Type: application/json`` and a body that ``OrderCreate`` accepts.
Everything else (a missing or bad token, another role, a missing key, a malformed body, another
content type) goes on to FastAPI unchanged, the body replayed, so every refusal keeps the
route's answer and order of checks. Nothing is spent or written before that decision.

It sits inside ``RequestMetrics`` and ``BodyLimit``, beside ``HeldProductReads``: the answer is
counted under the route's template, and a body over the limit is still refused.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.domain.errors import DomainError
from marketplace.domain.text import storable
from marketplace.domain.users import Principal, Role
from serve_app import problems
from serve_app.checkout import order_out, place_order
from serve_app.deps import MAX_IDEMPOTENCY_KEY
from serve_app.hot_reads import RouteTemplate, route_path
from serve_app.problems import ProblemError
from serve_app.replica import Replica
from serve_app.schemas import OrderCreate
from serve_app.tokens import InvalidToken

ORDERS_ROUTE = "/v1/orders"
_ROUTE = RouteTemplate(ORDERS_ROUTE)
_BUYERS = (Role.BUYER, Role.ADMIN)


class FastCheckouts:
    """Place well-formed checkouts without entering FastAPI's router (see the module)."""

    def __init__(self, app: ASGIApp, replica: Replica) -> None:
        self.app = app
        self.replica = replica

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or route_path(scope) != ORDERS_ROUTE
        ):
            await self.app(scope, receive, send)
            return
        headers = _headers_once(scope)
        key = headers.get(b"idempotency-key") if headers is not None else None
        caller = None
        if headers is not None and key is not None and _json(headers.get(b"content-type")):
            caller = await self._buyer(headers.get(b"authorization"))
        if caller is None or key is None or not _usable_key(key):
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            order_create = OrderCreate.model_validate_json(body)
        except ValidationError:
            order_create = None
        if order_create is None or buffered[-1]["type"] != "http.request":

            async def replay() -> Message:
                if buffered:
                    return buffered.pop(0)
                return await receive()

            await self.app(scope, replay, send)
            return
        scope["route"] = _ROUTE
        try:
            order = await place_order(self.replica, caller, key, order_create)
        except DomainError as exc:
            response = problems.domain_problem(exc)
        except ProblemError as exc:
            response = problems.raised_problem(exc)
        except Exception as exc:
            response = problems.unexpected_problem(exc)
        else:
            answer = order_out(order).model_dump_json().encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 201,
                    "headers": [
                        (b"content-length", str(len(answer)).encode()),
                        (b"content-type", b"application/json"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        await response(scope, receive, send)

    async def _buyer(self, authorization: str | None) -> Principal | None:
        """The caller when the header holds a token that verifies and the caller may check
        out; None otherwise (FastAPI then answers 401 or 403 as it always has)."""
        if authorization is None or authorization[:7].lower() != "bearer ":
            return None
        replica = self.replica
        try:
            await replica.revocations.ready()
        except Exception:
            return None  # a first poll that failed: FastAPI's route answers it (503)
        try:
            principal = replica.tokens.verify(authorization[7:].strip())
        except InvalidToken:
            return None
        return principal if principal.role in _BUYERS else None


def _headers_once(scope: Scope) -> dict[bytes, str] | None:
    """The request's headers by lower-case name, decoded as Starlette does (latin-1); None when
    one of the headers read here comes more than once (FastAPI decides what that means)."""
    seen: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in (b"authorization", b"idempotency-key", b"content-type"):
            if name in seen:
                return None
            seen[name] = value.decode("latin-1")
    return seen


def _json(content_type: str | None) -> bool:
    return (
        content_type is not None
        and content_type.partition(";")[0].strip().lower() == "application/json"
    )


def _usable_key(key: str) -> bool:
    """What ``deps.idempotency_key_header`` and ``IdempotencyKeyHeader.required`` accept."""
    return bool(key.strip()) and len(key) <= MAX_IDEMPOTENCY_KEY and storable(key)
