"""The HTTP gateway: a FastAPI app under ``@serve.ingress``, a thin adapter over the client.

Each route authenticates, validates, calls ``MarketplaceClient`` and maps the result (or the
domain error) onto the v1 contract of DESIGN.md section 6.
"""

import asyncio
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Response
from fastapi.security import OAuth2PasswordRequestForm
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from ray import serve
from ray.serve.handle import DeploymentHandle

from actors.classes import ACTOR_CLASSES
from actors.client import MarketplaceClient
from actors.directory import Directory
from marketplace.config import Settings
from marketplace.domain.catalog import parse_draft, parse_patch
from marketplace.domain.errors import Forbidden, InvalidInput
from marketplace.domain.inventory import StockItem
from marketplace.domain.orders import Order
from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Principal, Role, User, normalize_email
from marketplace.store.engine import create_engine
from serve_app import metrics, problems
from serve_app.hot_reads import PRODUCT_ROUTE, HeldProductReads, configure_hot_reads
from serve_app.limits import BodyLimit, configure_body_limit
from serve_app.metrics import RequestMetrics
from serve_app.problems import ProblemError
from serve_app.schemas import (
    CartOut,
    CartQuantity,
    DashboardOut,
    OrderCreate,
    OrderOut,
    OrderPage,
    Problem,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatchIn,
    ProductReplace,
    ShipmentMove,
    ShipmentOut,
    StockDelta,
    StockOut,
    TokenOut,
    UserCreate,
    UserOut,
    product_json,
)
from serve_app.security import InvalidToken, RateLimiter, configure_tokens, token_service

log = logging.getLogger("marketplace.gateway")
# Every error is a problem+json body (serve_app/problems.py). The schema is given inline under
# that media type: FastAPI's ``"model"`` key would document it under application/json instead,
# which the gateway never answers errors with. 400 is a body FastAPI cannot parse (invalid UTF-8,
# nesting too deep), 405 a method a path does not have, 503 an actor that is not reachable.
PROBLEM_SCHEMA: dict[str, Any] = {**Problem.model_json_schema(), "additionalProperties": True}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": problems.title(code),
        "content": {problems.PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
    }
    for code in (400, 401, 403, 404, 405, 409, 413, 422, 429, 503)
}

api = FastAPI(
    title="Marketplace",
    version="1.0.0",
    description="An actor-model marketplace. Money is in integer cents; ids are strings; "
    "errors are RFC 9457 problem details.",
    responses=ERRORS,
)
problems.install(api)


async def current_principal(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ProblemError(
            401,
            "missing bearer token",
            code="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return token_service().verify(authorization[7:].strip())
    except InvalidToken:
        raise ProblemError(
            401,
            "invalid or expired token",
            code="invalid_token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None


Caller = Annotated[Principal, Depends(current_principal)]
OptionalIdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _refuse_blank(idempotency_key: str | None) -> None:
    """A header that is there but blank is a mistake, not "no key": 422."""
    if idempotency_key is not None and not idempotency_key.strip():
        raise ProblemError(422, "the Idempotency-Key header is blank", code="idempotency_key_blank")


def require(principal: Principal, *roles: Role) -> None:
    """403 unless the caller has one of ``roles`` (admins always pass)."""
    if principal.role not in roles and principal.role is not Role.ADMIN:
        raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")


# Innermost first: RequestMetrics(BodyLimit(HeldProductReads(FastAPI's own stack))).
api.add_middleware(HeldProductReads)
api.add_middleware(BodyLimit)
api.add_middleware(RequestMetrics)


def _order_out(order: Order) -> OrderOut:
    return OrderOut.model_validate(order.public())


def _stock_out(item: StockItem) -> StockOut:
    return StockOut(
        product_id=item.product_id,
        available=item.available,
        reserved=item.reserved,
        sold=item.sold,
        stocked=item.stocked,
    )


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, role=user.role.value)


@serve.deployment(name="Gateway")
@serve.ingress(api)
class Gateway:
    """The ingress deployment; its replicas share nothing but the actors and the store."""

    def __init__(self, settings: dict[str, Any], auth: DeploymentHandle[Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        self.settings = Settings.model_validate(settings)
        configure_tokens(self.settings)
        configure_body_limit(self.settings.max_body_bytes)
        directory = Directory(self.settings)
        directory.create_all(ACTOR_CLASSES)  # get-or-create: the first replica up makes the actors
        self.client = MarketplaceClient(directory, create_engine(self.settings.database_url))
        self.auth = auth
        configure_hot_reads(self.client.held_product)
        self.login_limit = RateLimiter(self.settings.login_rate_per_minute)
        self.checkout_limit = RateLimiter(self.settings.checkout_rate_per_minute)

    # -- operations ------------------------------------------------------------------------

    @api.get("/v1/health", tags=["operations"])
    async def health(self) -> dict[str, str]:
        """Cheap liveness: answers without touching an actor."""
        return {"status": "ok"}

    # Second only to health: Starlette tries routes in order, and this is the hottest one.
    @api.get(PRODUCT_ROUTE, response_model=ProductOut, tags=["products"])
    async def get_product(self, product_id: str) -> Response:
        """One product (public)."""
        product = await self.client.get_product(product_id)
        # The hottest read: serialized once per product version, not re-validated by FastAPI.
        return Response(product_json(product), media_type="application/json")

    @api.get("/v1/ready", tags=["operations"])
    async def ready(self) -> Response:
        """Readiness: every actor answers."""
        try:
            actors = await asyncio.wait_for(self.client.ready(), 5)
        except Exception as exc:
            return problems.problem(503, f"actors not ready: {exc!r}", code="not_ready")
        return Response(
            content=f'{{"status":"ready","actors":{len(actors)}}}', media_type="application/json"
        )

    @api.get("/metrics", tags=["operations"], include_in_schema=False)
    async def prometheus(self) -> Response:
        """Prometheus text: request counts and latency per route, business counters."""
        try:
            stats = await asyncio.wait_for(self.client.order_stats(), 2)
            metrics.record_order_counters(stats)
            relay = await asyncio.wait_for(self.client.relay_stats(), 2)
            if relay is not None:
                metrics.record_relay(relay)
        except Exception:
            log.warning("order counters unavailable for /metrics")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @api.get("/v1/admin/audit", tags=["operations"])
    async def audit(self, caller: Caller) -> dict[str, Any]:
        """The invariant audit over the live system (admin)."""
        require(caller, Role.ADMIN)
        report = await self.client.audit()
        return report.model_dump()

    # -- users -----------------------------------------------------------------------------

    @api.post("/v1/users", status_code=201, response_model=UserOut, tags=["users"])
    async def register(
        self,
        body: UserCreate,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> UserOut:
        """Register a buyer or seller (carriers and admins: an admin's token is needed)."""
        role = Role(body.role)
        if role in (Role.CARRIER, Role.ADMIN):
            caller = await current_principal(authorization)
            require(caller, Role.ADMIN)
        from marketplace.domain.users import validate_registration

        validate_registration(body.email, body.password, body.name)
        password_hash: str = await self.auth.hash_password.remote(body.password)
        user = await self.client.users.register(
            body.email, body.password, body.name, role, password_hash=password_hash
        )
        return _user_out(user)

    @api.post("/v1/auth/token", response_model=TokenOut, tags=["users"])
    async def token(self, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
        """Log in with the OAuth2 password form (username = email)."""
        try:
            email = normalize_email(form.username)
        except InvalidInput:
            email = form.username.strip().lower()[:320]
        wait = self.login_limit.check(email)
        if wait:
            raise ProblemError(
                429,
                "too many login attempts",
                code="rate_limited",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        user = await self.client.users.by_email(email) if "@" in email else None
        stored = user.password_hash if user else None
        ok: bool = await self.auth.verify_password.remote(stored, form.password)
        if user is None or not ok:
            raise ProblemError(
                401,
                "wrong email or password",
                code="bad_credentials",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return TokenOut(
            access_token=token_service().issue(user), expires_in=self.settings.jwt_ttl_s
        )

    @api.get("/v1/users/me", response_model=UserOut, tags=["users"])
    async def me(self, caller: Caller) -> UserOut:
        """The caller's account."""
        user = await self.client.users.by_id(caller.id)
        if user is None:
            raise ProblemError(401, "the token's user no longer exists", code="invalid_token")
        return _user_out(user)

    # -- products --------------------------------------------------------------------------

    @api.post("/v1/products", status_code=201, response_model=ProductOut, tags=["products"])
    async def create_product(
        self, body: ProductCreate, caller: Caller, idempotency_key: OptionalIdempotencyKey = None
    ) -> ProductOut:
        """List a product with its initial stock (sellers). With an Idempotency-Key the listing
        is made once: a repeat answers the same product, a repeat with another body 422."""
        require(caller, Role.SELLER)
        _refuse_blank(idempotency_key)
        # The domain draft strips whitespace, so it can refuse what the schema let through
        # ("  " as a name): parse_draft answers InvalidInput (422), not a ValidationError (500).
        draft = parse_draft(body.model_dump(exclude={"initial_stock"}))
        product = await self.client.create_product(
            caller, draft, body.initial_stock, idempotency_key=idempotency_key
        )
        return ProductOut.model_validate(product.model_dump())

    @api.get("/v1/products", response_model=ProductPage, tags=["products"])
    async def search(
        self,
        q: Annotated[str, Query(max_length=200)] = "",
        category: Annotated[str | None, Query(max_length=100)] = None,
        seller_id: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> ProductPage:
        """Search active products by words, category and seller; paginated by cursor."""
        items, next_cursor = await self.client.search(
            q, category=category, seller_id=seller_id, limit=limit, cursor=cursor
        )
        return ProductPage(
            items=[ProductOut.model_validate(p.model_dump()) for p in items],
            next_cursor=next_cursor,
        )

    @api.patch("/v1/products/{product_id}", response_model=ProductOut, tags=["products"])
    async def patch_product(
        self, product_id: str, body: ProductPatchIn, caller: Caller
    ) -> ProductOut:
        """Change some fields (owner or admin); bumps the version."""
        patch = parse_patch(body.model_dump(exclude_none=True))
        product = await self.client.update_product(caller, product_id, patch)
        return ProductOut.model_validate(product.model_dump())

    @api.put("/v1/products/{product_id}", response_model=ProductOut, tags=["products"])
    async def replace_product(
        self, product_id: str, body: ProductReplace, caller: Caller
    ) -> ProductOut:
        """Replace every field (owner or admin); bumps the version."""
        product = await self.client.replace_product(
            caller, product_id, parse_draft(body.model_dump())
        )
        return ProductOut.model_validate(product.model_dump())

    @api.delete("/v1/products/{product_id}", response_model=ProductOut, tags=["products"])
    async def deactivate_product(self, product_id: str, caller: Caller) -> ProductOut:
        """Withdraw from sale (owner or admin); bumps the version."""
        product = await self.client.deactivate_product(caller, product_id)
        return ProductOut.model_validate(product.model_dump())

    @api.get("/v1/products/{product_id}/stock", response_model=StockOut, tags=["products"])
    async def stock(self, product_id: str) -> StockOut:
        """Available and reserved units (public)."""
        item = await self.client.get_stock(product_id)
        return _stock_out(item)

    @api.post("/v1/products/{product_id}/stock", response_model=StockOut, tags=["products"])
    async def adjust_stock(
        self,
        product_id: str,
        body: StockDelta,
        caller: Caller,
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> StockOut:
        """Restock or write off (owner or admin); never below zero available. With an
        Idempotency-Key the change is made once: a repeat answers the current stock, a repeat
        with another delta 422."""
        require(caller, Role.SELLER)
        _refuse_blank(idempotency_key)
        stock = await self.client.adjust_stock(
            caller, product_id, body.delta, idempotency_key=idempotency_key
        )
        return _stock_out(stock)

    # -- cart ------------------------------------------------------------------------------

    @api.get("/v1/cart", response_model=CartOut, tags=["cart"])
    async def cart(self, caller: Caller) -> CartOut:
        """The caller's cart (buyers)."""
        require(caller, Role.BUYER)
        return CartOut.model_validate((await self.client.get_cart(caller.id)).public())

    @api.put("/v1/cart/items/{product_id}", response_model=CartOut, tags=["cart"])
    async def set_cart_item(self, product_id: str, body: CartQuantity, caller: Caller) -> CartOut:
        """Set a product's quantity in the cart; 0 removes it."""
        require(caller, Role.BUYER)
        cart = await self.client.set_cart_item(caller.id, product_id, body.quantity)
        return CartOut.model_validate(cart.public())

    @api.delete("/v1/cart", response_model=CartOut, tags=["cart"])
    async def clear_cart(self, caller: Caller) -> CartOut:
        """Empty the cart."""
        require(caller, Role.BUYER)
        return CartOut.model_validate((await self.client.clear_cart(caller.id)).public())

    # -- orders ----------------------------------------------------------------------------

    @api.post("/v1/orders", status_code=201, response_model=OrderOut, tags=["orders"])
    async def place_order(
        self,
        body: OrderCreate,
        caller: Caller,
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> OrderOut:
        """Check out the given items (or the cart). The same Idempotency-Key with the same
        body returns the same order; with another body, 422. ``pending`` means the saga
        outlived the request; poll the order."""
        require(caller, Role.BUYER)
        if not idempotency_key or not idempotency_key.strip():
            raise ProblemError(
                422, "the Idempotency-Key header is required", code="idempotency_key_required"
            )
        wait = self.checkout_limit.check(caller.id)
        if wait:
            raise ProblemError(
                429,
                "too many checkouts",
                code="rate_limited",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        from marketplace.domain.orders import parse_place_order

        command = parse_place_order(
            {
                "buyer_id": caller.id,
                "idempotency_key": idempotency_key,
                "lines": None if body.items is None else [i.model_dump() for i in body.items],
                "card_token": body.payment.card_token,
                "shipping_address": body.shipping_address.model_dump(),
            }
        )
        submitted = asyncio.ensure_future(self.client.submit(command))
        done, _ = await asyncio.wait({submitted}, timeout=self.settings.checkout_wait_s)
        if submitted in done:
            order = submitted.result()
        else:
            order = await self.client.get_order(caller, command.order_id())
        metrics.record_checkout(order.status.value, order.failure_reason)
        return _order_out(order)

    @api.get("/v1/orders/{order_id}", response_model=OrderOut, tags=["orders"])
    async def get_order(self, order_id: str, caller: Caller) -> OrderOut:
        """One of the caller's orders (404 for anyone else's)."""
        return _order_out(await self.client.get_order(caller, order_id))

    @api.get("/v1/orders", response_model=OrderPage, tags=["orders"])
    async def list_orders(
        self,
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=40)] = None,
    ) -> OrderPage:
        """The caller's orders, newest first; ``cursor`` is the last id of the previous page."""
        orders = await self.client.list_orders(caller.id)
        start = 0
        if cursor:
            ids = [o.id for o in orders]
            if cursor not in ids:
                raise InvalidInput("cursor is not valid", field="cursor")
            start = ids.index(cursor) + 1
        page = orders[start : start + limit]
        next_cursor = page[-1].id if len(page) == limit and start + limit < len(orders) else None
        return OrderPage(items=[_order_out(o) for o in page], next_cursor=next_cursor)

    @api.post("/v1/orders/{order_id}/cancel", response_model=OrderOut, tags=["orders"])
    async def cancel_order(self, order_id: str, caller: Caller) -> OrderOut:
        """Cancel before shipping (409 once shipped): refund and restock."""
        return _order_out(await self.client.cancel_order(caller, order_id))

    @api.get("/v1/orders/{order_id}/shipment", response_model=ShipmentOut, tags=["shipments"])
    async def shipment(self, order_id: str, caller: Caller) -> ShipmentOut:
        """The order's shipment and its packages."""
        return ShipmentOut.model_validate(
            (await self.client.get_shipment(caller, order_id)).public()
        )

    @api.patch("/v1/shipments/{shipment_id}", response_model=ShipmentOut, tags=["shipments"])
    async def move_shipment(
        self, shipment_id: str, body: ShipmentMove, caller: Caller
    ) -> ShipmentOut:
        """Mark shipped or delivered (carriers and admins)."""
        require(caller, Role.CARRIER)
        shipment = await self.client.move_shipment(caller, shipment_id, ShipmentStatus(body.status))
        return ShipmentOut.model_validate(shipment.public())

    # -- sellers ---------------------------------------------------------------------------

    @api.get("/v1/sellers/me/dashboard", response_model=DashboardOut, tags=["sellers"])
    async def dashboard(self, caller: Caller) -> DashboardOut:
        """Orders, items, revenue and open orders of the calling seller."""
        require(caller, Role.SELLER)
        return DashboardOut.model_validate((await self.client.dashboard(caller.id)).public())
