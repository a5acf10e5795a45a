"""The work behind ``POST /v1/orders`` once the request is known to be a buyer's well-formed
checkout: shared by the FastAPI route (``serve_app/routes/orders.py``) and the path that answers
checkouts ahead of FastAPI (``serve_app/fast_checkout.py``), so both answer alike."""

from __future__ import annotations

import asyncio

from marketplace.domain.errors import NotFound, PriceChanged
from marketplace.domain.orders import Order, parse_place_order
from marketplace.domain.users import Principal
from serve_app.deps import rate_limit
from serve_app.problems import ProblemError
from serve_app.replica import Replica
from serve_app.schemas import OrderCreate, OrderOut


async def place_order(
    replica: Replica, caller: Principal, idempotency_key: str, body: OrderCreate
) -> Order:
    """Submit the checkout to the coordinators and wait for its order (at most
    ``checkout_wait_s``; then the order as recorded so far, ``pending`` included).

    The caller's role and the key have been checked. Raises the domain's errors (409
    ``price_changed`` and the rest), 429 past the caller's checkout rate, and 503 to retry with
    the same key when the order was not yet recorded when the wait ended.
    """
    rate_limit(replica.checkout_limit, caller.id, "too many checkouts")
    command = parse_place_order(
        {
            "buyer_id": caller.id,
            "idempotency_key": idempotency_key,
            "lines": None if body.items is None else [i.model_dump() for i in body.items],
            "card_token": body.payment.card_token,
            "shipping_address": body.shipping_address.model_dump(),
            "expected_total_cents": body.expected_total_cents,
        }
    )
    client = replica.client
    submitted = asyncio.ensure_future(client.submit(command))
    done, _ = await asyncio.wait({submitted}, timeout=replica.settings.checkout_wait_s)
    if submitted in done:
        try:
            order = submitted.result()
        except PriceChanged:
            replica.metrics.checkout_prices("price_changed")
            raise
    else:
        try:
            order = await client.order_for_key(command)
        except NotFound:
            # The key is the caller's own (scoped by buyer), so "not found" can only mean
            # its order's insert has not committed yet: the checkout is still on its way,
            # and a retry with the same key meets it rather than making a second one.
            raise ProblemError(
                503,
                "the checkout is still being recorded; retry with the same Idempotency-Key",
                code="checkout_in_progress",
                headers={"Retry-After": "1"},
            ) from None
    replica.metrics.checkout(order.status.value, order.failure_reason)
    replica.metrics.checkout_prices("stale_cart" if order.charged_unshown_price else "current")
    return order


def order_out(order: Order) -> OrderOut:
    """The order as the contract shows it."""
    return OrderOut.model_validate(order.public())
