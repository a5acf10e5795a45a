"""What routes share: the replica and its client, the caller and role checks, the
Idempotency-Key header and the rate limits, as FastAPI dependencies or plain checks.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, a
thread hop on every request for what is an attribute read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, Request
from pydantic import AfterValidator

from actors.client import MarketplaceClient
from marketplace.domain.errors import Forbidden
from marketplace.domain.text import UNSTORABLE, storable
from marketplace.domain.users import Principal, Role
from serve_app.problems import ProblemError
from serve_app.rate_limits import RateLimiter, ReplicaShare
from serve_app.replica import Replica
from serve_app.tokens import InvalidToken, TokenService

# The longest Idempotency-Key accepted; a longer one is a validation error (422).
MAX_IDEMPOTENCY_KEY = 200


def replica_of(request: Request) -> Replica:
    """The replica whose app answers ``request`` (set by ``serve_app.gateway.build_api``)."""
    replica = getattr(request.app.state, "replica", None)
    if replica is None:
        raise RuntimeError("this app was built without a replica (for its document alone)")
    return cast(Replica, replica)


async def current_replica(request: Request) -> Replica:
    """This replica's configuration."""
    return replica_of(request)


async def current_client(request: Request) -> MarketplaceClient:
    """This replica's ``MarketplaceClient``."""
    return replica_of(request).client


def principal_from(authorization: str | None, tokens: TokenService) -> Principal:
    """The caller named by an ``Authorization: Bearer <token>`` header; 401 otherwise."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ProblemError(
            401,
            "missing bearer token",
            code="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return tokens.verify(authorization[7:].strip())
    except InvalidToken:
        raise ProblemError(
            401,
            "invalid or expired token",
            code="invalid_token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None


async def authenticate(authorization: str | None, replica: Replica) -> Principal:
    """``principal_from`` once this replica knows the recent token revocations."""
    await replica.revocations.ready()
    return principal_from(authorization, replica.tokens)


async def current_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise (revoked included)."""
    return await authenticate(authorization, replica_of(request))


async def optional_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    """The caller on a public route: None without an Authorization header; a header that is
    there must hold a valid token (401 otherwise, as on every other route)."""
    if authorization is None:
        return None
    return await authenticate(authorization, replica_of(request))


def require(principal: Principal, *roles: Role) -> None:
    """403 unless the caller has one of ``roles`` (admins always pass).

    A call in the route rather than a dependency: a body that fails validation is answered 422
    before the role is looked at, as the contract has always done.
    """
    if principal.role not in roles and principal.role is not Role.ADMIN:
        raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")


@dataclass(frozen=True)
class IdempotencyKeyHeader:
    """The Idempotency-Key header as sent; a route takes the key from it after its role check,
    so a caller with the wrong role hears 403 whatever the header says, as the contract has
    always answered.

    Over ``MAX_IDEMPOTENCY_KEY`` characters, or holding what the store cannot keep (U+0000), is
    a validation error (422 ``validation_failed``), reported with the body's. A required key
    that is missing or blank is 422 ``idempotency_key_required``; an optional key that is there
    but blank is a mistake, not "no key": 422 ``idempotency_key_blank``.
    """

    sent: str | None

    def required(self) -> str:
        """The key; 422 when it is missing or blank."""
        if self.sent is None or not self.sent.strip():
            raise ProblemError(
                422, "the Idempotency-Key header is required", code="idempotency_key_required"
            )
        return self.sent

    def optional(self) -> str | None:
        """The key, or None when none was sent; 422 when it is blank."""
        if self.sent is not None and not self.sent.strip():
            raise ProblemError(
                422, "the Idempotency-Key header is blank", code="idempotency_key_blank"
            )
        return self.sent


def _storable_key(key: str | None) -> str | None:
    # The key is stored with what it made; HTTP/1.1 servers refuse U+0000 in a header, but an
    # ASGI server need not, and PostgreSQL would answer a 500 where the caller deserves a 422.
    if key is not None and not storable(key):
        raise ValueError(UNSTORABLE)
    return key


async def idempotency_key_header(
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY),
        AfterValidator(_storable_key),
    ] = None,
) -> IdempotencyKeyHeader:
    """The one dependency that reads the Idempotency-Key header."""
    return IdempotencyKeyHeader(key)


def rate_limit(limiter: RateLimiter | ReplicaShare, key: str, detail: str) -> None:
    """429 with Retry-After when ``key`` has spent its rate; otherwise one token is spent."""
    refuse_while(limiter.check(key), detail)


def refuse_while(wait: float, detail: str) -> None:
    """429 with Retry-After when a limit asks to ``wait`` (seconds); nothing when it is 0."""
    if wait:
        raise ProblemError(
            429, detail, code="rate_limited", headers={"Retry-After": str(max(1, round(wait)))}
        )


def client_address(request: Request) -> str:
    """The address a request came from, for per-address limits.

    With ``TRUSTED_PROXY_HOPS`` = n, the n-th address from the right of X-Forwarded-For (each
    trusted proxy appends the address it was reached from; what is left of them is the client's
    to forge); otherwise, or when the header has fewer, the connection's. Serve's ingress does
    not add one, so without a proxy in front every client shares the ingress's address.
    """
    hops = replica_of(request).settings.trusted_proxy_hops
    if hops:
        forwarded = [
            part.strip()
            for header in request.headers.getlist("x-forwarded-for")
            for part in header.split(",")
        ]
        if len(forwarded) >= hops and forwarded[-hops]:
            return forwarded[-hops][:64]
    return request.client.host if request.client is not None else "unknown"


ThisReplica = Annotated[Replica, Depends(current_replica)]
Client = Annotated[MarketplaceClient, Depends(current_client)]
Caller = Annotated[Principal, Depends(current_principal)]
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
IdempotencyKey = Annotated[IdempotencyKeyHeader, Depends(idempotency_key_header)]
