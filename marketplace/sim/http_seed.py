"""Load a synthetic market into a served marketplace through its HTTP contract (DESIGN.md 6).

``await seed_over_http(base_url, market, carriers=..., admin_email=..., admin_password=...)``
registers the market's sellers and buyers (``POST /v1/users``; a 409 means the account exists,
so it logs in with the market's password instead), logs every user in once and keeps the bearer
tokens, registers the carriers with an admin's token, and lists the products with their initial
stock as their sellers. The server assigns product ids, so the result, an ``HttpMarket``, maps the
market's product ids (what operations carry) to the server's. Seeding again with the same market
changes nothing: users are reused and each listing carries an Idempotency-Key derived from the
market's product id, so the server answers the product the first seeding made.

``HttpTarget`` (``http_target.py``) runs the simulator's operations with these tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from marketplace.sim.market import SeedProduct, SeedUser, SyntheticMarket

ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase is "users", "carriers" or "products"; done and total
count all three together."""

DEFAULT_TIMEOUT_S = 60.0
"""Seconds one seeding request may take (connect, read, write, or wait for a connection)."""

RETRIES = 5
"""How often a 503 answer is retried (after its Retry-After) before seeding gives up."""

RATE_LIMIT_PATIENCE_S = 600.0
"""How long a request answered 429 keeps waiting out the limit (Retry-After each time) before
seeding gives up: sign-ups are limited per client address, so a large market seeded from one
machine is paced by the limit rather than failed by it."""

_JSON = {"Content-Type": "application/json"}


class SeedError(RuntimeError):
    """The server refused a seeding request in a way a retry would not fix."""


@dataclass
class HttpMarket:
    """A market as seeded over HTTP: where it is served and how to act as its users.

    ``tokens`` maps every seeded email (sellers, buyers and carriers) to a bearer token;
    ``user_ids`` maps them to the ids the server gave; ``product_ids`` maps the market's product
    ids to the server's. Every user's password is ``password`` (the market's), which is what a
    client logs in with again when a token expires.
    """

    base_url: str
    password: str
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, str] = field(default_factory=dict)
    product_ids: dict[str, str] = field(default_factory=dict)
    carriers: list[str] = field(default_factory=list)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def describe(reply: httpx.Response) -> str:
    """One line naming a request and its answer, for errors."""
    request = reply.request
    return f"{request.method} {request.url.path} -> {reply.status_code} {reply.text[:300]}"


def retry_after(reply: httpx.Response, default: float = 1.0) -> float:
    """Seconds the server asked to wait (``Retry-After``), or ``default``."""
    try:
        return max(0.0, float(reply.headers.get("Retry-After", default)))
    except ValueError:
        return default


async def send(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    retries: int = RETRIES,
) -> httpx.Response:
    """One request, retried after ``Retry-After`` while the answer is 429 (for up to
    ``RATE_LIMIT_PATIENCE_S``) or 503 (``retries`` times).

    Seeding must end with every account and listing made, so a rate limit (logins and sign-ups
    are limited) or a moment of unavailability is waited out rather than reported.
    """
    content = None if body is None else orjson.dumps(body)
    sent = {**_JSON, **(headers or {})} if content is not None else dict(headers or {})
    unavailable = 0
    limited_until = asyncio.get_running_loop().time() + RATE_LIMIT_PATIENCE_S
    while True:
        reply = await http.request(method, path, content=content, headers=sent, data=form)
        if reply.status_code == 503 and unavailable < retries:
            unavailable += 1
        elif reply.status_code != 429 or asyncio.get_running_loop().time() > limited_until:
            return reply
        await asyncio.sleep(retry_after(reply))


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    """A bearer token for ``email`` (``POST /v1/auth/token``, the OAuth2 password form)."""
    reply = await send(
        http, "POST", "/v1/auth/token", form={"username": email, "password": password}
    )
    if reply.status_code != 200:
        raise SeedError(f"logging in as {email}: {describe(reply)}")
    return str(orjson.loads(reply.content)["access_token"])


async def register(
    http: httpx.AsyncClient,
    email: str,
    password: str,
    name: str,
    role: str,
    *,
    admin_token: str | None = None,
) -> tuple[str, str]:
    """Register ``email`` with ``role`` (reusing the account if it exists) and log in.

    Returns (user id, token). A taken email is the same user from an earlier seeding when its
    password logs in and its role matches; anything else is a ``SeedError``.
    """
    reply = await send(
        http,
        "POST",
        "/v1/users",
        body={"email": email, "password": password, "name": name, "role": role},
        headers=bearer(admin_token) if admin_token else None,
    )
    if reply.status_code not in (201, 409):
        raise SeedError(f"registering {email}: {describe(reply)}")
    token = await login(http, email, password)
    if reply.status_code == 201:
        return str(orjson.loads(reply.content)["id"]), token
    me = await send(http, "GET", "/v1/users/me", headers=bearer(token))
    if me.status_code != 200:
        raise SeedError(f"reading {email}'s account: {describe(me)}")
    user: dict[str, Any] = orjson.loads(me.content)
    if user["role"] != role:
        raise SeedError(f"{email} exists as a {user['role']}, not a {role}")
    return str(user["id"]), token


def listing_key(spec: SeedProduct) -> str:
    """The Idempotency-Key a product is listed with: the same market lists the same product."""
    return f"seed-{spec.product_id}"


async def seed_over_http(
    base_url: str,
    market: SyntheticMarket,
    *,
    carriers: list[str],
    admin_email: str,
    admin_password: str,
    concurrency: int = 16,
    progress: ProgressCallback | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_S,
    http: httpx.AsyncClient | None = None,
) -> HttpMarket:
    """Seed ``market`` and ``carriers`` (emails, ``behaviours.carrier_ids``) into the
    marketplace at ``base_url``, ``concurrency`` requests at a time; returns the ``HttpMarket``.

    Every user is logged in once: the gateway limits logins per email (``login_rate_per_minute``)
    and a 429 is waited out, so seeding works under the default limit too. ``request_timeout``
    bounds each request (seconds); ``http`` is a client to use instead of a new one (its base URL
    must be ``base_url``).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if http is None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=base_url, timeout=request_timeout, limits=limits
        ) as own:
            return await _seed(
                own, base_url, market, carriers, admin_email, admin_password, concurrency, progress
            )
    return await _seed(
        http, base_url, market, carriers, admin_email, admin_password, concurrency, progress
    )


async def _seed(
    http: httpx.AsyncClient,
    base_url: str,
    market: SyntheticMarket,
    carriers: list[str],
    admin_email: str,
    admin_password: str,
    concurrency: int,
    progress: ProgressCallback | None,
) -> HttpMarket:
    seeded = HttpMarket(base_url=base_url, password=market.password, carriers=list(carriers))
    gate = asyncio.Semaphore(concurrency)
    total = len(market.sellers) + len(market.buyers) + len(carriers) + len(market.products)
    done = 0

    def advance(phase: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(phase, done, total)

    async def user(spec: SeedUser) -> None:
        async with gate:
            user_id, token = await register(
                http, spec.email, market.password, spec.name, spec.role.value
            )
        seeded.user_ids[spec.email], seeded.tokens[spec.email] = user_id, token
        advance("users")

    async def carrier(email: str, admin_token: str) -> None:
        name = "Carrier " + email.split("@", 1)[0]
        async with gate:
            user_id, token = await register(
                http, email, market.password, name, "carrier", admin_token=admin_token
            )
        seeded.user_ids[email], seeded.tokens[email] = user_id, token
        advance("carriers")

    async def product(spec: SeedProduct) -> None:
        seller = market.sellers[spec.seller_index].email
        draft = spec.draft()
        body = {
            "name": draft.name,
            "description": draft.description,
            "category": draft.category,
            "price_cents": draft.price_cents,
            "initial_stock": spec.stock,
        }
        headers = {**bearer(seeded.tokens[seller]), "Idempotency-Key": listing_key(spec)}
        async with gate:
            reply = await send(http, "POST", "/v1/products", body=body, headers=headers)
        if reply.status_code not in (200, 201):
            raise SeedError(f"listing {spec.name!r} as {seller}: {describe(reply)}")
        seeded.product_ids[spec.product_id] = str(orjson.loads(reply.content)["id"])
        advance("products")

    if progress is not None:
        progress("users", 0, total)
    admin = asyncio.ensure_future(login(http, admin_email, admin_password))
    await _all([*(user(spec) for spec in (*market.sellers, *market.buyers)), admin])
    admin_token = admin.result()
    # Products need their sellers' tokens, carriers the admin's: both after the users.
    await _all(
        [
            *(carrier(email, admin_token) for email in carriers),
            *(product(spec) for spec in market.products),
        ]
    )
    return seeded


async def _all(awaitables: list[Awaitable[Any]]) -> None:
    """Await every one; on the first failure cancel the rest and raise that failure itself
    (not an exception group), so a refused request reads as its ``SeedError``."""
    try:
        async with asyncio.TaskGroup() as group:
            for awaitable in awaitables:
                group.create_task(_wait(awaitable))
    except BaseExceptionGroup as failed:
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _wait(awaitable: Awaitable[Any]) -> None:
    await awaitable
