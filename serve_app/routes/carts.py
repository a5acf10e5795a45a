"""The buyer's cart.

Every cart answer shows each line twice: at the price and version it was set at
(``unit_price_cents``, ``product_version``, summed in ``total_cents``: DESIGN.md section 6)
and at the product's current price and version, read from the catalog with the cart
(``current_price_cents``, ``current_version``, ``price_changed``, ``available``, summed in
``current_total_cents``, with ``price_changed`` at cart level if any line's moved). The
current side is read when the cart is, as ``GET /v1/products/{id}`` reads a product, so it is
never staler than a product read; the enrichment is the client's
(``MarketplaceClient.get_cart``), so the in-process client answers the same.
"""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.domain.users import Role
from serve_app.deps import Caller, Client, require
from serve_app.schemas import CartOut, CartQuantity

router = APIRouter(tags=["cart"])


@router.get("/v1/cart", response_model=CartOut)
async def cart(caller: Caller, client: Client) -> CartOut:
    """The caller's cart (buyers), each line at the price it was set at and at the current
    price. After a seller raised a line's price from 1200 to 1500:

        {"items": [{"product_id": "prd_...", "quantity": 2,
                    "unit_price_cents": 1200, "product_version": 1,
                    "current_price_cents": 1500, "current_version": 2,
                    "price_changed": true, "available": true}],
         "total_cents": 2400, "current_total_cents": 3000, "price_changed": true}

    A checkout of the cart charges ``current_total_cents``; send it as the checkout's
    ``expected_total_cents`` to be charged that or nothing (409 ``price_changed``)."""
    require(caller, Role.BUYER)
    return CartOut.model_validate((await client.get_cart(caller.id)).public())


@router.put("/v1/cart/items/{product_id}", response_model=CartOut)
async def set_cart_item(
    product_id: str, body: CartQuantity, caller: Caller, client: Client
) -> CartOut:
    """Set a product's quantity in the cart, at its current price and version; 0 removes it.
    Answers the cart as ``GET /v1/cart`` does."""
    require(caller, Role.BUYER)
    cart = await client.set_cart_item(caller.id, product_id, body.quantity)
    return CartOut.model_validate(cart.public())


@router.delete("/v1/cart", response_model=CartOut)
async def clear_cart(caller: Caller, client: Client) -> CartOut:
    """Empty the cart."""
    require(caller, Role.BUYER)
    return CartOut.model_validate((await client.clear_cart(caller.id)).public())
