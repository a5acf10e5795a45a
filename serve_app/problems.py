"""RFC 9457 problem details for every error the gateway returns."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from ray.exceptions import ObjectLostError, RayActorError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from marketplace.domain.errors import DomainError, TransientFailure
from marketplace.store.failures import is_transient

log = logging.getLogger("marketplace.gateway")
PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# Ray's errors for an actor or object that is gone for now (its process or node died, Ray is
# restarting it): the request may be retried, as every write the contract offers takes a key.
RAY_UNAVAILABLE = (RayActorError, ObjectLostError)


def title(status: int) -> str:
    """The standard reason phrase of an error status."""
    return _TITLES.get(status, "Error")


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response."""
    body = {
        "type": f"https://marketplace.dev/problems/{code or status}",
        "title": title(status),
        "status": status,
        "detail": detail,
        **({"code": code} if code else {}),
        **extra,
    }
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


class ProblemError(Exception):
    """Raise from a route to answer with a problem (status, detail, optional headers)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers


def domain_problem(exc: DomainError) -> Response:
    """The answer to a domain error: its status, message, code and details."""
    extra = {k: v for k, v in exc.details.items() if k not in ("status", "detail", "code")}
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return problem(exc.status, exc.message, code=exc.code, headers=headers, **extra)


def raised_problem(exc: ProblemError) -> Response:
    """The answer a route asked for by raising ``ProblemError``."""
    return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers)


def unexpected_problem(exc: Exception) -> Response:
    """The answer to any other exception: 503 to retry when the database or an actor is away
    for the moment, 500 (logged with its traceback) otherwise."""
    cause = getattr(exc, "cause", None)  # what an actor raised, under Ray's RayTaskError
    if (
        is_transient(exc)
        or (isinstance(cause, BaseException) and is_transient(cause))
        or isinstance(exc, RAY_UNAVAILABLE)
    ):
        # The database went away under the gateway's own query (a login, a registration)
        # or an actor's read, a connection timed out, or the actor (its node) is gone until
        # Ray restarts it elsewhere: nothing about the request is wrong, so ask for a retry.
        log.warning("unavailable: %r", exc)
        return problem(
            503,
            "the marketplace is unavailable for the moment; retry shortly",
            code=TransientFailure.code,
            headers={"Retry-After": "1"},
        )
    log.error("unhandled error", exc_info=exc)
    return problem(500, "an unexpected error occurred", code="internal_error")


def install(app: FastAPI) -> None:
    """Map every exception the app can meet onto a problem response."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> Response:
        return domain_problem(exc)

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> Response:
        return raised_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p not in ("body", "query", "path", "header"))
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return problem(422, detail, code="validation_failed", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route"
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return unexpected_problem(exc)
