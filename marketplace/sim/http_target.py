"""The HTTP target: the simulator's operations through the gateway's contract (DESIGN.md 6).

The same operations as ``ClientTarget``, resolved the same way (the ``Carts`` mirror, the shared
``Deliveries``, ``order_outcome``), but each one is an HTTP request made with the acting user's
bearer token from an ``HttpMarket`` (``http_seed.seed_over_http``), and the market's product ids
are translated to the ones the server assigned.

How an answer reads as an ``Outcome``: 2xx is ok (a checkout is then judged by its order); a 4xx
is the domain's refusal, ``Outcome.failure`` with the problem's ``code`` (``http_<status>`` when
it has none); a 5xx is ``Outcome.failure("http_5xx")`` whatever its code, so that the gateway
failing stays apart from the market saying no; a timeout is ``Outcome.failure("timeout")``. A
401 (the token expired) logs the user in again and retries once. Each user sends back the last
``X-Catalog-Session`` the gateway gave it, as a browser keeps a cookie (session consistency).

The target's ``httpx.AsyncClient``s serve every simulated user: their pools (``limit`` connections
in all) bound the requests in flight, and a request waiting for a connection is late, which the
open loop counts in its latency, as it should. The connections are split over several clients of
``pool_size`` each, used in turn: httpcore's pool walks all of its connections (polling the idle
ones' sockets) whenever it queues or releases a request, so a client's CPU per request grows with
its pool. Measured on the two-core machine here against a static reply, one client cost about
1.5 ms of CPU per request with 8 connections, 6 ms with 32 and 14 ms with 128; 16 clients of 8
connections at 128 in flight, about 2.5 ms.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from marketplace.consistency.history import Call, History, Kind
from marketplace.domain.ids import sibling_id
from marketplace.domain.session_token import HEADER as CATALOG_SESSION
from marketplace.sim.deliveries import Deliveries
from marketplace.sim.http_seed import HttpMarket, bearer, retry_after
from marketplace.sim.loops import OK, Outcome
from marketplace.sim.operations import (
    AbandonCart,
    AddToCart,
    Browse,
    Checkout,
    MoveShipment,
    Operation,
    ReadDashboard,
    Restock,
    Search,
    UpdatePrice,
    UpdateProduct,
)
from marketplace.sim.recording import recording
from marketplace.sim.shopping import Carts, IdleCarrier, order_outcome, run_scope, scoped_key

HTTP_5XX = "http_5xx"
"""The reason of an operation the gateway answered with a 5xx (it failed, not the market)."""

TIMEOUT = "timeout"
"""The reason of an operation whose request timed out."""

DEFAULT_LIMIT = 256
"""Connections in all the target's pools: the most requests in flight at once."""

DEFAULT_POOL_SIZE = 8
"""Connections per httpx client (see the module docstring for why the pools are small)."""

DEFAULT_TIMEOUT_S = 30.0
"""Seconds a request may take to connect, to be written, to be answered, or to get a
connection from the pool."""

SHIPPING_ADDRESS = {
    "name": "Ada Buyer",
    "street": "1 Market Street",
    "city": "Springfield",
    "zip": "12345",
    "country": "US",
}
"""Where simulated orders ship (the in-process client's default address)."""

_JSON = {"Content-Type": "application/json"}


class Refused(Exception):
    """An operation's request was answered with an error: ``outcome`` says which. ``for_good``
    is False for answers worth retrying later (5xx, 429), True for the market's refusals."""

    def __init__(self, outcome: Outcome, *, for_good: bool) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome
        self.for_good = for_good


class HttpTarget:
    """Runs operations over HTTP for the users of ``market`` (see the module docstring).

    Use as ``async with HttpTarget(market) as target:`` or call ``open()`` and ``close()``.
    ``limit`` is the most connections (requests in flight), spread over clients of ``pool_size``
    connections each; ``timeout`` bounds each request (seconds); ``card_token`` is what
    checkouts pay with (``tok_visa`` approves). ``http`` is the one client to use instead of
    making them; it is not closed by ``close()``. Checkout keys are sent prefixed with
    ``key_scope`` (default: fresh for this target; see ``shopping.run_scope``). With
    ``history``, product reads and writes are recorded there (``recording.py``).
    """

    def __init__(
        self,
        market: HttpMarket,
        deliveries: Deliveries | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = DEFAULT_TIMEOUT_S,
        card_token: str = "tok_visa",
        http: httpx.AsyncClient | None = None,
        key_scope: str | None = None,
        history: History | None = None,
    ) -> None:
        if limit < 1 or pool_size < 1:
            raise ValueError("limit and pool_size must be >= 1")
        self.market = market
        self.history = history
        self.key_scope = key_scope if key_scope is not None else run_scope()
        self.deliveries = deliveries if deliveries is not None else Deliveries()
        self.carts = Carts()
        self.limit = limit
        self.pool_size = min(pool_size, limit)
        self.timeout = timeout
        self.card_token = card_token
        self.relogins = 0
        self._given = http
        self._clients: list[httpx.AsyncClient] = [http] if http is not None else []
        self._turn = 0
        self._login_locks: dict[str, asyncio.Lock] = {}
        # Each simulated user's X-Catalog-Session, sent back as a browser would keep a cookie:
        # in session consistency it is what gives the user read-your-writes and monotonic reads.
        self._sessions: dict[str, str] = {}

    async def open(self) -> Self:
        """Make the clients (a no-op when one was given or they are open)."""
        if not self._clients:
            sizes = [self.pool_size] * (self.limit // self.pool_size)
            if self.limit % self.pool_size:
                sizes.append(self.limit % self.pool_size)
            self._clients = [
                httpx.AsyncClient(
                    base_url=self.market.base_url,
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                )
                for size in sizes
            ]
        return self

    async def close(self) -> None:
        """Close the clients this target made."""
        made, self._clients = self._clients, [self._given] if self._given is not None else []
        for client in made:
            if client is not self._given:
                await client.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(self, op: Operation) -> Outcome:
        """Perform ``op``; an error answer is a failure with its reason (module docstring)."""
        try:
            return await self._run(op)
        except Refused as refused:
            return refused.outcome
        except httpx.TimeoutException:
            return Outcome.failure(TIMEOUT)

    async def _run(self, op: Operation) -> Outcome:
        match op:
            case Browse(customer=customer, product_id=product_id):
                path = f"/v1/products/{self._product(product_id)}"
                with self._record(customer, Kind.READ, product_id) as call:
                    call.version = answered_version(await self._call(customer, "GET", path))
            case Search(customer=customer, query=query, category=category):
                params = {"q": query} if category is None else {"q": query, "category": category}
                await self._call(customer, "GET", "/v1/products", params=params)
            case AddToCart(customer=customer, product_id=product_id, quantity=quantity):
                wanted = self.carts.add(customer, product_id, quantity)
                path = f"/v1/cart/items/{self._product(product_id)}"
                await self._call(customer, "PUT", path, body={"quantity": wanted})
            case Checkout(customer=customer, idempotency_key=key):
                self.carts.forget(customer)
                body = {
                    "payment": {"card_token": self.card_token},
                    "shipping_address": SHIPPING_ADDRESS,
                }
                headers = {"Idempotency-Key": scoped_key(self.key_scope, key)}
                reply = await self._call(customer, "POST", "/v1/orders", body=body, headers=headers)
                order: dict[str, Any] = orjson.loads(reply.content)
                if order["status"] == "confirmed":
                    self.deliveries.confirmed(order["id"])
                else:
                    # A refused checkout leaves the cart as it was; the next session starts empty.
                    await self._call(customer, "DELETE", "/v1/cart")
                return order_outcome(
                    order["status"], order.get("failure_reason"), charged_unshown_price(order)
                )
            case AbandonCart(customer=customer):
                self.carts.forget(customer)
                await self._call(customer, "DELETE", "/v1/cart")
            case ReadDashboard(seller=seller):
                await self._call(seller, "GET", "/v1/sellers/me/dashboard")
            case UpdatePrice(seller=seller, product_id=product_id, price_cents=price):
                path = f"/v1/products/{self._product(product_id)}"
                with self._record(seller, Kind.WRITE, product_id) as call:
                    reply = await self._call(seller, "PATCH", path, body={"price_cents": price})
                    call.version = answered_version(reply)
            case UpdateProduct(seller=seller, product_id=product_id, description=text):
                path = f"/v1/products/{self._product(product_id)}"
                with self._record(seller, Kind.WRITE, product_id) as call:
                    reply = await self._call(seller, "PATCH", path, body={"description": text})
                    call.version = answered_version(reply)
            case Restock(seller=seller, product_id=product_id, delta=delta):
                path = f"/v1/products/{self._product(product_id)}/stock"
                await self._call(seller, "POST", path, body={"delta": delta})
            case MoveShipment(carrier=carrier):
                move = self.deliveries.take()
                if move is None:
                    return IdleCarrier
                path = f"/v1/shipments/{sibling_id(move.order_id, 'shp')}"
                try:
                    await self._call(carrier, "PATCH", path, body={"status": move.status.value})
                except Refused as refused:
                    # Refused for good (e.g. cancelled meanwhile): not queued again.
                    if not refused.for_good:
                        self.deliveries.give_back(move)
                    raise
                except Exception:
                    self.deliveries.give_back(move)
                    raise
                self.deliveries.done(move)
        return OK

    def _record(self, actor: str, kind: Kind, product_id: str) -> AbstractContextManager[Call]:
        return recording(self.history, actor, kind, product_id, surely_not_applied)

    @property
    def clients(self) -> list[httpx.AsyncClient]:
        """The open clients (for a caller that measures them; the target uses them in turn)."""
        return list(self._clients)

    def _product(self, product_id: str) -> str:
        try:
            return self.market.product_ids[product_id]
        except KeyError:
            raise LookupError(f"product {product_id} was not seeded") from None

    def _token(self, email: str) -> str:
        try:
            return self.market.tokens[email]
        except KeyError:
            raise LookupError(f"{email} was not seeded (no token)") from None

    def _client(self) -> httpx.AsyncClient:
        """The next client in turn."""
        if not self._clients:
            raise RuntimeError("the HttpTarget is not open (use `async with` or open())")
        self._turn = (self._turn + 1) % len(self._clients)
        return self._clients[self._turn]

    async def _call(
        self,
        actor: str,
        method: str,
        path: str,
        *,
        body: object = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """``method path`` as ``actor``; the 2xx answer, else ``Refused``."""
        http = self._client()
        content = None if body is None else orjson.dumps(body)
        extra = {**(_JSON if content is not None else {}), **(headers or {})}
        session = self._sessions.get(actor)
        if session is not None:
            extra[CATALOG_SESSION] = session
        token = self._token(actor)
        reply = await http.request(
            method, path, content=content, params=params, headers={**bearer(token), **extra}
        )
        if reply.status_code == 401:
            token = await self._login_again(actor, token)
            reply = await http.request(
                method, path, content=content, params=params, headers={**bearer(token), **extra}
            )
        status = reply.status_code
        issued = reply.headers.get(CATALOG_SESSION)
        if issued is not None:
            self._sessions[actor] = issued
        if status < 400:
            return reply
        if status >= 500:
            raise Refused(Outcome.failure(HTTP_5XX), for_good=False)
        raise Refused(Outcome.failure(problem_code(reply)), for_good=status != 429)

    async def _login_again(self, email: str, stale: str) -> str:
        """A fresh token for ``email``; one login however many requests found ``stale`` out."""
        lock = self._login_locks.setdefault(email, asyncio.Lock())
        async with lock:
            current = self.market.tokens.get(email)
            if current is not None and current != stale:
                return current  # someone else logged in meanwhile
            http = self._client()
            form = {"username": email, "password": self.market.password}
            reply = await http.post("/v1/auth/token", data=form)
            if reply.status_code == 429:
                await asyncio.sleep(retry_after(reply))
                reply = await http.post("/v1/auth/token", data=form)
            if reply.status_code != 200:
                # The retry will answer 401 again, and that is the operation's outcome.
                return stale
            token = str(orjson.loads(reply.content)["access_token"])
            self.market.tokens[email] = token
            self.relogins += 1
            return token


def charged_unshown_price(order: dict[str, Any]) -> bool:
    """``Order.charged_unshown_price`` of an order as the HTTP API answers it."""
    return any(
        item.get("shown_unit_price_cents") not in (None, item["unit_price_cents"])
        for item in order.get("items") or ()
    )


def surely_not_applied(exc: BaseException) -> bool:
    """Whether a request that raised ``exc`` surely changed nothing: a refusal (4xx, 429),
    not a 5xx or a timeout, after which the write may have been applied."""
    return isinstance(exc, Refused) and exc.outcome.reason != HTTP_5XX


def answered_version(reply: httpx.Response) -> int | None:
    """The product version an answer carries: its ETag (``"4"``), else the body's
    ``version``; ``None`` when it carries none."""
    tag = reply.headers.get("etag", "").strip('"')
    if tag.isdigit():
        return int(tag)
    try:
        body = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, int) else None


def problem_code(reply: httpx.Response) -> str:
    """The ``code`` of a problem+json answer, or ``http_<status>`` when it has none."""
    try:
        problem = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        problem = None
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) and code else f"http_{reply.status_code}"
