"""The order state machine, the checkout command's validation and request fingerprints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.errors import Conflict, InvalidInput
from marketplace.domain.ids import is_id, order_id_for
from marketplace.domain.orders import (
    MAX_LINE_QUANTITY,
    MAX_LINES,
    SOLD_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Order,
    OrderStatus,
    PlaceOrder,
    parse_place_order,
)
from tests.unit.factories import (
    BUYER,
    SELLER_A,
    SELLER_B,
    T0,
    address,
    hex_id,
    make_item,
    make_order,
)

pytestmark = pytest.mark.unit

P, C, S, D, X = (
    OrderStatus.PENDING,
    OrderStatus.CONFIRMED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.CANCELLED,
)

# The state machine as DESIGN.md states it, written out independently of TRANSITIONS.
ALLOWED = {(P, C), (C, S), (S, D), (P, X), (C, X)}
VALID_PATHS = {(P,), (P, C), (P, C, S), (P, C, S, D), (P, X), (P, C, X)}


def test_transition_table_is_exactly_the_documented_one() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(OrderStatus)
    assert {s for s, targets in TRANSITIONS.items() if not targets} == TERMINAL_STATUSES == {D, X}
    assert {C, S, D} == SOLD_STATUSES


@settings(max_examples=200, deadline=None)
@given(
    targets=st.lists(st.sampled_from(list(OrderStatus)), max_size=25),
    reasons=st.lists(st.none() | st.sampled_from(["out_of_stock", "cancelled_by_buyer"])),
)
def test_random_transitions_follow_the_state_machine(
    targets: list[OrderStatus], reasons: list[str | None]
) -> None:
    order = make_order()
    path = [order.status]
    for step, target in enumerate(targets):
        now = T0 + timedelta(seconds=step + 1)
        reason = reasons[step] if step < len(reasons) else None
        before = order
        snapshot = before.model_dump()
        if (before.status, target) in ALLOWED:
            order = before.transition(target, now, reason)
            assert order.status is target
            assert order.version == before.version + 1
            assert order.updated_at == now
            assert order.failure_reason == reason
            assert order.created_at == before.created_at
            assert order.items == before.items
            path.append(target)
        else:
            was_terminal = before.terminal
            with pytest.raises(Conflict) as info:
                before.transition(target, now, reason)
            assert info.value.details == {"order_id": before.id, "status": before.status.value}
            if was_terminal:
                assert before.status in {D, X}
        # Refused or not, the previous object is untouched.
        assert before.model_dump() == snapshot
    assert tuple(path) in VALID_PATHS
    assert order.version == len(path)
    assert order.terminal == (order.status in {D, X})
    if X in path:
        assert path[-1] is X and path.index(X) <= 2


@pytest.mark.parametrize("terminal", [D, X])
@pytest.mark.parametrize("target", list(OrderStatus))
def test_terminal_statuses_never_change(terminal: OrderStatus, target: OrderStatus) -> None:
    order = make_order(status=terminal)
    assert order.terminal
    with pytest.raises(Conflict):
        order.transition(target, T0)
    assert order.status is terminal


def test_cancel_only_before_shipping() -> None:
    assert make_order(status=P).transition(X, T0).status is X
    assert make_order(status=C).transition(X, T0, "cancelled_by_buyer").failure_reason == (
        "cancelled_by_buyer"
    )
    with pytest.raises(Conflict):
        make_order(status=S).transition(X, T0)


def test_public_and_items_by_seller() -> None:
    items = (make_item(1, SELLER_B, 2, 250), make_item(2, SELLER_A), make_item(3, SELLER_B))
    order = make_order(items)
    public = order.public()
    assert public["status"] == "pending"
    assert public["total_cents"] == 2 * 250 + 100 + 100
    assert public["created_at"] == T0.isoformat()
    assert [item["product_id"] for item in public["items"]] == [hex_id("prd", n) for n in (1, 2, 3)]
    assert set(public) == {
        "id",
        "buyer_id",
        "status",
        "failure_reason",
        "items",
        "total_cents",
        "created_at",
    }
    grouped = order.items_by_seller()
    assert {seller: [i.product_id for i in lst] for seller, lst in grouped.items()} == {
        SELLER_B: [hex_id("prd", 1), hex_id("prd", 3)],
        SELLER_A: [hex_id("prd", 2)],
    }
    assert items[0].subtotal_cents == 500


# --- parse_place_order ------------------------------------------------------------------------


def body(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "buyer_id": BUYER,
        "idempotency_key": "key-1",
        "lines": [{"product_id": hex_id("prd", 1), "quantity": 2}],
        "card_token": "tok_visa",
        "shipping_address": address(),
    }
    data.update(changes)
    return data


def line(n: int = 1, quantity: Any = 1) -> dict[str, Any]:
    return {"product_id": hex_id("prd", n), "quantity": quantity}


def test_valid_body_parses() -> None:
    command = parse_place_order(body())
    assert isinstance(command, PlaceOrder)
    assert command.lines is not None and command.lines[0].quantity == 2
    cart_checkout = parse_place_order(body(lines=None))
    assert cart_checkout.lines is None
    many = parse_place_order(body(lines=[line(n, MAX_LINE_QUANTITY) for n in range(MAX_LINES)]))
    assert many.lines is not None and len(many.lines) == MAX_LINES


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": [line(quantity=0)]}, "lines.0.quantity"),
        ({"lines": [line(quantity=-1)]}, "lines.0.quantity"),
        ({"lines": [line(quantity=MAX_LINE_QUANTITY + 1)]}, "lines.0.quantity"),
        ({"lines": [line(quantity=1.5)]}, "lines.0.quantity"),
        ({"lines": [line(quantity=2.0)]}, "lines.0.quantity"),
        ({"lines": [line(quantity="2")]}, "lines.0.quantity"),
        ({"lines": [line(quantity=True)]}, "lines.0.quantity"),
        ({"lines": [line(quantity=None)]}, "lines.0.quantity"),
        ({"lines": [line(1), line(2, quantity=0)]}, "lines.1.quantity"),
        ({"lines": [{"product_id": "prd_123", "quantity": 1}]}, "items.product_id"),
        ({"lines": [{"product_id": hex_id("usr", 1), "quantity": 1}]}, "items.product_id"),
        ({"lines": [{"product_id": hex_id("prd", 1).upper(), "quantity": 1}]}, "items.product_id"),
        ({"lines": [{"product_id": hex_id("prd", 1) + "\n", "quantity": 1}]}, "items.product_id"),
        ({"lines": [{"product_id": 7, "quantity": 1}]}, "lines.0.product_id"),
        ({"lines": [line(1), line(2), line(1)]}, "items.product_id"),
        ({"lines": []}, "items"),
        ({"lines": [line(n) for n in range(MAX_LINES + 1)]}, "items"),
        ({"lines": [{"product_id": hex_id("prd", 1), "quantity": 1, "x": 1}]}, "lines.0.x"),
        ({"buyer_id": "bob"}, "buyer_id"),
        ({"buyer_id": hex_id("prd", 1)}, "buyer_id"),
        ({"buyer_id": BUYER + "\n"}, "buyer_id"),
        ({"buyer_id": 12}, "buyer_id"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ({"card_token": ""}, "card_token"),
        ({"shipping_address": address(country="GBR")}, "shipping_address.country"),
        ({"shipping_address": address(country="G")}, "shipping_address.country"),
        ({"shipping_address": address(country="G1")}, "shipping_address.country"),
        ({"shipping_address": address(country="")}, "shipping_address.country"),
        ({"shipping_address": address(name="   ")}, "shipping_address.name"),
        ({"shipping_address": address(zip="1" * 21)}, "shipping_address.zip"),
        ({"shipping_address": {**address(), "planet": "earth"}}, "shipping_address.planet"),
        ({"coupon": "FREE"}, "coupon"),
    ],
)
def test_bad_bodies_are_invalid_input(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_place_order(body(**changes))
    assert info.value.details["field"] == field
    assert info.value.status == 422


@pytest.mark.parametrize(
    "missing", ["buyer_id", "idempotency_key", "card_token", "shipping_address"]
)
def test_missing_fields_are_invalid_input(missing: str) -> None:
    data = body()
    del data[missing]
    with pytest.raises(InvalidInput) as info:
        parse_place_order(data)
    assert info.value.details["field"] == missing


# --- fingerprints and order ids ---------------------------------------------------------------


def test_equal_bodies_have_equal_fingerprints() -> None:
    first = parse_place_order(body())
    second = parse_place_order(body())
    assert first is not second
    assert first.fingerprint() == second.fingerprint()
    # The fingerprint is a digest of the body only: the key and buyer travel beside it.
    assert parse_place_order(body(idempotency_key="other")).fingerprint() == first.fingerprint()
    # Normalised input (stripped whitespace) fingerprints like its normal form.
    padded = parse_place_order(body(shipping_address=address(city="  London ")))
    assert padded.fingerprint() == first.fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"lines": [line(1, 3)]},
        {"lines": [line(2, 2)]},
        {"lines": [line(1, 2), line(2, 1)]},
        {"lines": None},
        {"card_token": "tok_declined"},
        {"shipping_address": address(name="Grace Hopper")},
        {"shipping_address": address(street="2 Analytical Way")},
        {"shipping_address": address(city="Paris")},
        {"shipping_address": address(zip="N1 9GV")},
        {"shipping_address": address(country="FR")},
    ],
)
def test_any_body_difference_changes_the_fingerprint(changes: dict[str, Any]) -> None:
    assert (
        parse_place_order(body(**changes)).fingerprint() != parse_place_order(body()).fingerprint()
    )


@settings(max_examples=200, deadline=None)
@given(
    quantities=st.lists(
        st.integers(min_value=1, max_value=MAX_LINE_QUANTITY), min_size=1, max_size=5
    ),
    token=st.text(min_size=1, max_size=20).filter(lambda t: t.strip() == t),
)
def test_fingerprint_is_a_function_of_the_body(quantities: list[int], token: str) -> None:
    lines = [line(n, q) for n, q in enumerate(quantities)]
    first = parse_place_order(body(lines=lines, card_token=token))
    again = parse_place_order(body(lines=[dict(x) for x in lines], card_token=token))
    assert first.fingerprint() == again.fingerprint()
    bumped = [dict(x) for x in lines]
    bumped[-1]["quantity"] = quantities[-1] % MAX_LINE_QUANTITY + 1
    assert parse_place_order(body(lines=bumped, card_token=token)).fingerprint() != (
        first.fingerprint()
    )


def test_order_id_for_is_deterministic_and_keyed() -> None:
    other_buyer = hex_id("usr", 2)
    first = order_id_for(BUYER, "key-1")
    assert first == order_id_for(BUYER, "key-1")
    assert is_id(first, "ord")
    ids = {
        first,
        order_id_for(BUYER, "key-2"),
        order_id_for(other_buyer, "key-1"),
        order_id_for(other_buyer, "key-2"),
    }
    assert len(ids) == 4


@settings(max_examples=200, deadline=None)
@given(a=st.text(max_size=30), b=st.text(max_size=30))
def test_order_ids_differ_per_key(a: str, b: str) -> None:
    assert (order_id_for(BUYER, a) == order_id_for(BUYER, b)) == (a == b)
    assert order_id_for(BUYER, a) != order_id_for(hex_id("usr", 2), a)


def test_order_is_frozen() -> None:
    order = make_order()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        order.status = C  # type: ignore[misc]
    assert isinstance(order, Order)


def test_an_order_says_whether_it_charged_a_price_its_cart_did_not_show() -> None:
    shown = make_item(1, unit_price_cents=1500).model_copy(update={"shown_unit_price_cents": 1500})
    moved = make_item(2, unit_price_cents=1500).model_copy(update={"shown_unit_price_cents": 1200})
    named = make_item(3)  # named items: no cart price to compare
    assert not make_order((shown, named)).charged_unshown_price
    assert make_order((shown, moved)).charged_unshown_price
