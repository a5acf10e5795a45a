"""Checkout, the buyer's orders and cancelling one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from marketplace.domain.errors import Forbidden, InvalidInput, NotFound
from marketplace.domain.users import Role
from serve_app import checkout
from serve_app.checkout import order_out
from serve_app.deps import Caller, Client, IdempotencyKey, ThisReplica, require
from serve_app.schemas import OrderCreate, OrderOut, OrderPage

router = APIRouter(tags=["orders"])


@router.post("/v1/orders", status_code=201, response_model=OrderOut)
async def place_order(
    body: OrderCreate,
    caller: Caller,
    replica: ThisReplica,
    idempotency: IdempotencyKey,
) -> OrderOut:
    """Check out the given items (or the cart). The same Idempotency-Key with the same
    body returns the same order; with another body, 422. ``pending`` means the saga
    outlived the request; poll the order. 503 with Retry-After means the order was not yet
    recorded when the wait ended; retry with the same key.

    Lines are charged at the catalog's current prices. With ``expected_total_cents`` (for the
    cart, ``GET /v1/cart``'s ``current_total_cents``), a different total answers 409
    ``price_changed`` and nothing is ordered. Without it, a checkout of the cart records on each
    line the price the cart held (``shown_unit_price_cents``) beside the one charged: added at
    1200 and repriced to 1500, the line reads ``"unit_price_cents": 1500,
    "shown_unit_price_cents": 1200``."""
    require(caller, Role.BUYER)
    return order_out(await checkout.place_order(replica, caller, idempotency.required(), body))


@router.get("/v1/orders/{order_id}", response_model=OrderOut)
async def get_order(order_id: str, caller: Caller, client: Client) -> OrderOut:
    """One of the caller's orders (404 for anyone else's)."""
    return order_out(await client.get_order(caller, order_id))


@router.get("/v1/orders", response_model=OrderPage)
async def list_orders(
    caller: Caller,
    client: Client,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> OrderPage:
    """The caller's orders, newest first; ``cursor`` is the last id of the previous page.

    Each coordinator sends at most ``limit + 1`` of them (the one more says whether a next
    page exists), after the cursor's order, looked up first: a buyer's page costs the same
    however many orders they placed before it.
    """
    after = None
    if cursor:
        try:
            after = await client.get_order(caller, cursor)
        except (InvalidInput, NotFound, Forbidden):
            after = None
        if after is None or after.buyer_id != caller.id:  # an admin sees others' orders
            raise InvalidInput("cursor is not valid", field="cursor")
    orders = await client.list_orders(caller.id, limit=limit + 1, after=after)
    page = orders[:limit]
    next_cursor = page[-1].id if len(orders) > limit else None
    return OrderPage(items=[order_out(o) for o in page], next_cursor=next_cursor)


@router.post("/v1/orders/{order_id}/cancel", response_model=OrderOut)
async def cancel_order(order_id: str, caller: Caller, client: Client) -> OrderOut:
    """Cancel before shipping (409 once shipped): refund and restock."""
    return order_out(await client.cancel_order(caller, order_id))
