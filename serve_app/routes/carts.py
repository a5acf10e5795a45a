"""The buyer's cart."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.domain.users import Role
from serve_app.deps import Caller, Client, require
from serve_app.schemas import CartOut, CartQuantity

router = APIRouter(tags=["cart"])


@router.get("/v1/cart", response_model=CartOut)
async def cart(caller: Caller, client: Client) -> CartOut:
    """The caller's cart (buyers)."""
    require(caller, Role.BUYER)
    return CartOut.model_validate((await client.get_cart(caller.id)).public())


@router.put("/v1/cart/items/{product_id}", response_model=CartOut)
async def set_cart_item(
    product_id: str, body: CartQuantity, caller: Caller, client: Client
) -> CartOut:
    """Set a product's quantity in the cart; 0 removes it."""
    require(caller, Role.BUYER)
    cart = await client.set_cart_item(caller.id, product_id, body.quantity)
    return CartOut.model_validate(cart.public())


@router.delete("/v1/cart", response_model=CartOut)
async def clear_cart(caller: Caller, client: Client) -> CartOut:
    """Empty the cart."""
    require(caller, Role.BUYER)
    return CartOut.model_validate((await client.clear_cart(caller.id)).public())
