"""The catalog and its stock: listing, search, changes and restocking."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from marketplace.domain.catalog import parse_draft, parse_patch
from marketplace.domain.inventory import StockItem
from marketplace.domain.users import Role
from serve_app.catalog_session import SESSION_ANSWER, Session, answer_session
from serve_app.deps import Caller, Client, IdempotencyKey, MaybeCaller, require
from serve_app.etags import IfMatch, etag
from serve_app.hot_reads import PRODUCT_ROUTE
from serve_app.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatchIn,
    ProductReplace,
    StockDelta,
    StockOut,
    product_json,
)

router = APIRouter(tags=["products"])


def _stock_out(item: StockItem) -> StockOut:
    return StockOut(
        product_id=item.product_id,
        available=item.available,
        reserved=item.reserved,
        sold=item.sold,
        stocked=item.stocked,
    )


# First of its router: Starlette tries routes in order, and this is the hottest one (those the
# replica holds a copy of are answered before routing, by serve_app/hot_reads.py).
@router.get(PRODUCT_ROUTE, response_model=ProductOut, responses={200: {"headers": SESSION_ANSWER}})
async def get_product(product_id: str, client: Client, session: Session) -> Response:
    """One product (public), as fresh as the catalog's consistency mode promises
    (`X-Catalog-Session` in `session` consistency)."""
    product = await client.get_product(product_id, session=session)
    # The hottest read: serialized once per product version, not re-validated by FastAPI.
    response = Response(
        product_json(product),
        media_type="application/json",
        headers={"ETag": etag(product.version)},
    )
    answer_session(response, session)
    return response


@router.post(
    "/v1/products",
    status_code=201,
    response_model=ProductOut,
    responses={201: {"headers": SESSION_ANSWER}},
)
async def create_product(
    body: ProductCreate,
    caller: Caller,
    client: Client,
    idempotency: IdempotencyKey,
    response: Response,
    session: Session,
) -> ProductOut:
    """List a product with its initial stock (sellers). With an Idempotency-Key the listing
    is made once: a repeat answers the same product, a repeat with another body 422."""
    require(caller, Role.SELLER)
    idempotency_key = idempotency.optional()
    # The domain draft strips whitespace, so it can refuse what the schema let through
    # ("  " as a name): parse_draft answers InvalidInput (422), not a ValidationError (500).
    draft = parse_draft(body.model_dump(exclude={"initial_stock"}))
    product = await client.create_product(
        caller, draft, body.initial_stock, idempotency_key=idempotency_key, session=session
    )
    response.headers["ETag"] = etag(product.version)
    answer_session(response, session)
    return ProductOut.model_validate(product.model_dump())


@router.get(
    "/v1/products", response_model=ProductPage, responses={200: {"headers": SESSION_ANSWER}}
)
async def search(
    client: Client,
    session: Session,
    response: Response,
    q: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str | None, Query(max_length=100)] = None,
    seller_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ProductPage:
    """Search active products by words, category and seller; paginated by cursor; as fresh
    as a product read (`X-Catalog-Session` in `session` consistency)."""
    items, next_cursor = await client.search(
        q, category=category, seller_id=seller_id, limit=limit, cursor=cursor, session=session
    )
    answer_session(response, session)
    return ProductPage(
        items=[ProductOut.model_validate(p.model_dump()) for p in items],
        next_cursor=next_cursor,
    )


@router.patch(
    "/v1/products/{product_id}",
    response_model=ProductOut,
    responses={200: {"headers": SESSION_ANSWER}},
)
async def patch_product(
    product_id: str,
    body: ProductPatchIn,
    caller: Caller,
    client: Client,
    if_version: IfMatch,
    idempotency: IdempotencyKey,
    response: Response,
    session: Session,
) -> ProductOut:
    """Change some fields (owner or admin); bumps the version. With `If-Match`, only from
    the versions it names (412 `version_mismatch` otherwise, nothing changed).

    With an `Idempotency-Key` the change is made once: the same key with the same body to the
    same product answers the product as that write left it (same version and ETag) and changes
    nothing, even when its `If-Match` no longer matches (the write it stands for was made);
    the key with another body, another product or another kind of write (PUT, DELETE share
    the caller's keys) is 422 `idempotency_key_reused`. Keys are the caller's own and stand
    for 24 hours (`IDEMPOTENCY_TTL_S`); a write that was refused stores no key."""
    idempotency_key = idempotency.optional()
    patch = parse_patch(body.model_dump(exclude_none=True))
    product = await client.update_product(
        caller,
        product_id,
        patch,
        if_version=if_version,
        idempotency_key=idempotency_key,
        session=session,
    )
    response.headers["ETag"] = etag(product.version)
    answer_session(response, session)
    return ProductOut.model_validate(product.model_dump())


@router.put(
    "/v1/products/{product_id}",
    response_model=ProductOut,
    responses={200: {"headers": SESSION_ANSWER}},
)
async def replace_product(
    product_id: str,
    body: ProductReplace,
    caller: Caller,
    client: Client,
    if_version: IfMatch,
    idempotency: IdempotencyKey,
    response: Response,
    session: Session,
) -> ProductOut:
    """Replace every field (owner or admin); bumps the version. `If-Match` and
    `Idempotency-Key` as for PATCH."""
    idempotency_key = idempotency.optional()
    product = await client.replace_product(
        caller,
        product_id,
        parse_draft(body.model_dump()),
        if_version=if_version,
        idempotency_key=idempotency_key,
        session=session,
    )
    response.headers["ETag"] = etag(product.version)
    answer_session(response, session)
    return ProductOut.model_validate(product.model_dump())


@router.delete(
    "/v1/products/{product_id}",
    response_model=ProductOut,
    responses={200: {"headers": SESSION_ANSWER}},
)
async def deactivate_product(
    product_id: str,
    caller: Caller,
    client: Client,
    if_version: IfMatch,
    idempotency: IdempotencyKey,
    response: Response,
    session: Session,
) -> ProductOut:
    """Withdraw from sale (owner or admin); bumps the version. `If-Match` and
    `Idempotency-Key` as for PATCH."""
    idempotency_key = idempotency.optional()
    product = await client.deactivate_product(
        caller,
        product_id,
        if_version=if_version,
        idempotency_key=idempotency_key,
        session=session,
    )
    response.headers["ETag"] = etag(product.version)
    answer_session(response, session)
    return ProductOut.model_validate(product.model_dump())


@router.get(
    "/v1/products/{product_id}/stock", response_model=StockOut, response_model_exclude_none=True
)
async def stock(product_id: str, client: Client, caller: MaybeCaller) -> StockOut:
    """Available and reserved units (public, DESIGN.md section 6). The product's seller and
    admins, signed in, also see `sold` and `stocked`: how a product sells is its seller's."""
    item = await client.get_stock(product_id)
    if caller is not None and (
        caller.role is Role.ADMIN
        or (
            caller.role is Role.SELLER
            and (await client.get_product(product_id)).seller_id == caller.id
        )
    ):
        return _stock_out(item)
    return StockOut(product_id=item.product_id, available=item.available, reserved=item.reserved)


@router.post("/v1/products/{product_id}/stock", response_model=StockOut)
async def adjust_stock(
    product_id: str,
    body: StockDelta,
    caller: Caller,
    client: Client,
    idempotency: IdempotencyKey,
) -> StockOut:
    """Restock or write off (owner or admin); never below zero available. With an
    Idempotency-Key the change is made once: a repeat answers the current stock, a repeat
    with another delta 422."""
    require(caller, Role.SELLER)
    idempotency_key = idempotency.optional()
    item = await client.adjust_stock(
        caller, product_id, body.delta, idempotency_key=idempotency_key
    )
    return _stock_out(item)
