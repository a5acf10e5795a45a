"""Shipments: one per order, one package per seller, and their state machine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.errors import Conflict
from marketplace.domain.ids import is_id
from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.shipments import Shipment, ShipmentStatus, shipment_for
from tests.unit.factories import BUYER, SELLER_A, SELLER_B, hex_id, make_item, make_order

pytestmark = pytest.mark.unit

PEN, SHI, DEL, CAN = (
    ShipmentStatus.PENDING,
    ShipmentStatus.SHIPPED,
    ShipmentStatus.DELIVERED,
    ShipmentStatus.CANCELLED,
)
ALLOWED = {(PEN, SHI), (SHI, DEL), (PEN, CAN)}


def confirmed_order() -> Order:
    items = (
        make_item(1, SELLER_B, quantity=2),
        make_item(2, SELLER_A, quantity=1),
        make_item(3, SELLER_B, quantity=4),
    )
    return make_order(items, status=OrderStatus.CONFIRMED, n=42)


def test_one_package_per_seller() -> None:
    order = confirmed_order()
    shipment = shipment_for(order)
    assert shipment.id == "shp_" + order.id.removeprefix("ord_")
    assert is_id(shipment.id, "shp")
    assert (shipment.order_id, shipment.buyer_id) == (order.id, BUYER)
    assert (shipment.status, shipment.version) == (PEN, 1)
    assert [p.seller_id for p in shipment.packages] == sorted([SELLER_A, SELLER_B])
    by_seller = {p.seller_id: p for p in shipment.packages}
    assert by_seller[SELLER_A].items == ({"product_id": hex_id("prd", 2), "quantity": 1},)
    assert by_seller[SELLER_B].items == (
        {"product_id": hex_id("prd", 1), "quantity": 2},
        {"product_id": hex_id("prd", 3), "quantity": 4},
    )
    assert all(p.status is PEN for p in shipment.packages)
    assert shipment_for(order) == shipment, "deterministic, so a retried step opens the same one"


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4), st.integers(min_value=1, max_value=9)),
        min_size=1,
        max_size=12,
    )
)
def test_packages_partition_the_order(lines: list[tuple[int, int]]) -> None:
    items = tuple(
        make_item(n, hex_id("usr", 100 + seller), quantity)
        for n, (seller, quantity) in enumerate(lines)
    )
    sellers = [item.seller_id for item in items]
    shipment = shipment_for(make_order(items))
    seller_ids = [p.seller_id for p in shipment.packages]
    assert seller_ids == sorted(set(sellers))
    shipped = sorted(
        (p.seller_id, i["product_id"], i["quantity"]) for p in shipment.packages for i in p.items
    )
    assert shipped == sorted((i.seller_id, i.product_id, i.quantity) for i in items)


@settings(max_examples=200, deadline=None)
@given(targets=st.lists(st.sampled_from(list(ShipmentStatus)), max_size=10))
def test_moved_to_follows_the_state_machine(targets: list[ShipmentStatus]) -> None:
    shipment = shipment_for(confirmed_order())
    path = [shipment.status]
    for target in targets:
        before = shipment
        if (before.status, target) in ALLOWED:
            shipment = before.moved_to(target)
            assert shipment.status is target
            assert all(p.status is target for p in shipment.packages)
            assert shipment.version == before.version + 1
            path.append(target)
        else:
            with pytest.raises(Conflict) as info:
                before.moved_to(target)
            assert info.value.details == {"shipment_id": before.id, "status": before.status.value}
    assert tuple(path) in {(PEN,), (PEN, SHI), (PEN, SHI, DEL), (PEN, CAN)}
    assert shipment.version == len(path)


def test_public() -> None:
    shipment: Shipment = shipment_for(confirmed_order()).moved_to(SHI)
    public = shipment.public()
    assert public["status"] == "shipped"
    assert public["order_id"] == hex_id("ord", 42)
    assert {p["status"] for p in public["packages"]} == {"shipped"}
    assert set(public["packages"][0]) == {"seller_id", "items", "status"}
