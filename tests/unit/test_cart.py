"""Carts: setting quantities, checking lines out, totals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.cart import Cart, CartItem
from marketplace.domain.errors import InvalidInput
from marketplace.domain.orders import MAX_LINE_QUANTITY, MAX_LINES, OrderLine, check_lines
from tests.unit.factories import BUYER, hex_id, make_product

pytestmark = pytest.mark.unit


def test_empty_cart() -> None:
    cart = Cart(buyer_id=BUYER)
    assert cart.items == ()
    assert cart.total_cents == 0
    assert cart.public() == {"items": [], "total_cents": 0}
    assert cart.lines() == ()


def test_with_quantity_sets_replaces_and_removes() -> None:
    kettle = make_product(1, price_cents=1999, version=3)
    lamp = make_product(2, price_cents=500)
    cart = Cart(buyer_id=BUYER).with_quantity(kettle, kettle.id, 2)
    assert cart.items == (
        CartItem(product_id=kettle.id, quantity=2, unit_price_cents=1999, product_version=3),
    )
    assert cart.version == 1
    cart = cart.with_quantity(lamp, lamp.id, 3)
    assert cart.total_cents == 2 * 1999 + 3 * 500
    # Setting again replaces the line (and re-prices it from the product given).
    cheaper = kettle.model_copy(update={"price_cents": 1000, "version": 4})
    cart = cart.with_quantity(cheaper, kettle.id, 1)
    assert [(i.product_id, i.quantity, i.unit_price_cents) for i in cart.items] == [
        (lamp.id, 3, 500),
        (kettle.id, 1, 1000),
    ]
    assert cart.total_cents == 1000 + 1500
    assert cart.version == 3
    # Zero removes, even when the product is gone or inactive.
    cart = cart.with_quantity(None, kettle.id, 0)
    assert [i.product_id for i in cart.items] == [lamp.id]
    cart = cart.with_quantity(None, hex_id("prd", 99), 0)
    assert [i.product_id for i in cart.items] == [lamp.id]
    assert cart.version == 5
    public = cart.public()
    assert public["total_cents"] == 1500
    assert public["items"] == [
        {"product_id": lamp.id, "quantity": 3, "unit_price_cents": 500, "product_version": 1}
    ]


@pytest.mark.parametrize("quantity", [-1, MAX_LINE_QUANTITY + 1, True, False, 2.5, 2.0, "3", None])
def test_with_quantity_rejects_bad_quantities(quantity: Any) -> None:
    product = make_product(1)
    cart = Cart(buyer_id=BUYER)
    with pytest.raises(InvalidInput) as info:
        cart.with_quantity(product, product.id, quantity)
    assert info.value.details["field"] == "quantity"


def test_with_quantity_rejects_unsellable_products() -> None:
    product = make_product(1)
    cart = Cart(buyer_id=BUYER)
    for candidate in (None, product.deactivated()):
        with pytest.raises(InvalidInput) as info:
            cart.with_quantity(candidate, product.id, 1)
        assert info.value.details["field"] == "product_id"


def test_cart_holds_at_most_max_lines() -> None:
    cart = Cart(buyer_id=BUYER)
    for n in range(MAX_LINES):
        cart = cart.with_quantity(make_product(n), hex_id("prd", n), 1)
    assert len(cart.items) == MAX_LINES
    extra = make_product(MAX_LINES)
    with pytest.raises(InvalidInput):
        cart.with_quantity(extra, extra.id, 1)
    # Changing a line already there is still fine.
    assert cart.with_quantity(make_product(0), hex_id("prd", 0), 5).total_cents == (
        (MAX_LINES + 4) * 100
    )
    check_lines(cart.lines())


def test_without_removes_bought_quantities_and_keeps_the_rest() -> None:
    a, b, c = make_product(1), make_product(2), make_product(3)
    cart = Cart(buyer_id=BUYER)
    for product, quantity in ((a, 2), (b, 5), (c, 1)):
        cart = cart.with_quantity(product, product.id, quantity)
    bought = (
        OrderLine(product_id=a.id, quantity=2),
        OrderLine(product_id=b.id, quantity=3),
        OrderLine(product_id=hex_id("prd", 9), quantity=1),
    )
    after = cart.without(bought)
    assert [(i.product_id, i.quantity) for i in after.items] == [(b.id, 2), (c.id, 1)]
    assert after.version == cart.version + 1
    # Buying more than is in the cart (it changed since) just empties the line.
    assert cart.without((OrderLine(product_id=c.id, quantity=4),)).lines() == (
        OrderLine(product_id=a.id, quantity=2),
        OrderLine(product_id=b.id, quantity=5),
    )


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),
            st.integers(min_value=0, max_value=MAX_LINE_QUANTITY),
            st.integers(min_value=0, max_value=10_000),
        ),
        max_size=30,
    )
)
def test_cart_matches_a_dict_model(steps: list[tuple[int, int, int]]) -> None:
    cart = Cart(buyer_id=BUYER)
    model: dict[str, tuple[int, int]] = {}
    for n, quantity, price in steps:
        product = make_product(n, price_cents=price)
        cart = cart.with_quantity(product, product.id, quantity)
        if quantity:
            model[product.id] = (quantity, price)
        else:
            model.pop(product.id, None)
        assert {i.product_id: (i.quantity, i.unit_price_cents) for i in cart.items} == model
        assert cart.total_cents == sum(q * p for q, p in model.values())
        assert len({i.product_id for i in cart.items}) == len(cart.items)
    assert cart.version == len(steps)


# --- the cart beside the current prices (Cart.priced) -----------------------------------------


def test_priced_cart_shows_unchanged_lines_as_they_were_set() -> None:
    kettle, lamp = make_product(1, price_cents=1999, version=3), make_product(2, price_cents=500)
    cart = Cart(buyer_id=BUYER).with_quantity(kettle, kettle.id, 2).with_quantity(lamp, lamp.id, 1)
    priced = cart.priced({kettle.id: kettle, lamp.id: lamp})
    assert (priced.buyer_id, priced.version) == (cart.buyer_id, cart.version)
    assert priced.total_cents == priced.current_total_cents == cart.total_cents == 2 * 1999 + 500
    assert priced.price_changed is False
    assert priced.public() == {
        "items": [
            {
                "product_id": kettle.id,
                "quantity": 2,
                "unit_price_cents": 1999,
                "product_version": 3,
                "current_price_cents": 1999,
                "current_version": 3,
                "price_changed": False,
                "available": True,
            },
            {
                "product_id": lamp.id,
                "quantity": 1,
                "unit_price_cents": 500,
                "product_version": 1,
                "current_price_cents": 500,
                "current_version": 1,
                "price_changed": False,
                "available": True,
            },
        ],
        "total_cents": 2 * 1999 + 500,
        "current_total_cents": 2 * 1999 + 500,
        "price_changed": False,
    }
    # DESIGN.md section 6's fields keep their meaning: the cart's own public() is a subset.
    public, own = priced.public(), cart.public()
    assert public["total_cents"] == own["total_cents"]
    for shown, held in zip(public["items"], own["items"], strict=True):
        assert {key: shown[key] for key in held} == held


def test_priced_cart_shows_a_moved_price_beside_the_price_it_was_set_at() -> None:
    kettle, lamp = make_product(1, price_cents=1200), make_product(2, price_cents=500)
    cart = Cart(buyer_id=BUYER).with_quantity(kettle, kettle.id, 2).with_quantity(lamp, lamp.id, 1)
    dearer = kettle.model_copy(update={"price_cents": 1500, "version": 2})
    renamed = lamp.model_copy(update={"name": "a better lamp", "version": 2})
    priced = cart.priced({kettle.id: dearer, lamp.id: renamed})
    by_id = {item.product_id: item for item in priced.items}
    moved, same = by_id[kettle.id], by_id[lamp.id]
    assert (moved.unit_price_cents, moved.product_version) == (1200, 1)
    assert (moved.current_price_cents, moved.current_version) == (1500, 2)
    assert moved.price_changed and moved.available
    # A new version with the same price is no price change.
    assert (same.current_version, same.price_changed) == (2, False)
    assert priced.total_cents == 2 * 1200 + 500
    assert priced.current_total_cents == 2 * 1500 + 500
    assert priced.price_changed is True
    # A cheaper price is a change too.
    cheaper = kettle.model_copy(update={"price_cents": 900, "version": 3})
    assert cart.priced({kettle.id: cheaper, lamp.id: lamp}).current_total_cents == 2 * 900 + 500


def test_priced_cart_shows_inactive_and_unknown_products_as_unavailable() -> None:
    kettle, lamp = make_product(1, price_cents=1200), make_product(2, price_cents=500)
    cart = Cart(buyer_id=BUYER).with_quantity(kettle, kettle.id, 1).with_quantity(lamp, lamp.id, 2)
    withdrawn = kettle.deactivated()
    priced = cart.priced({kettle.id: withdrawn})  # the lamp: not known to the catalog
    by_id = {item.product_id: item for item in priced.items}
    gone, lost = by_id[kettle.id], by_id[lamp.id]
    assert gone.available is False and gone.price_changed is False
    assert gone.current_version == withdrawn.version
    # Unknown: the price and version the line holds, unavailable.
    assert lost.available is False and lost.price_changed is False
    assert (lost.current_price_cents, lost.current_version) == (500, 1)
    # Unavailable lines still count in the current total, as a checkout prices them.
    assert priced.current_total_cents == priced.total_cents == 1200 + 2 * 500
    assert priced.price_changed is False


def test_an_empty_cart_priced() -> None:
    priced = Cart(buyer_id=BUYER).priced({})
    assert priced.public() == {
        "items": [],
        "total_cents": 0,
        "current_total_cents": 0,
        "price_changed": False,
    }


def test_shown_prices_are_the_prices_lines_were_set_at() -> None:
    kettle, lamp = make_product(1, price_cents=1200), make_product(2, price_cents=500)
    cart = Cart(buyer_id=BUYER).with_quantity(kettle, kettle.id, 2).with_quantity(lamp, lamp.id, 1)
    assert cart.shown_prices() == {kettle.id: 1200, lamp.id: 500}
