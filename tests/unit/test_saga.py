"""The checkout saga in-process: an OrderCoordinator with fake peers, no Ray.

The peers are the real inventory, payment, shipment and cart actors' classes, run in this
process with nothing written; the coordinator writes nothing either, except in the crash test,
where it keeps its orders in a SQLite file so that a second coordinator can resume them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.carts import CartShard
from actors.inventory import InventoryPartition
from actors.orders import OrderCoordinator
from actors.payments import PaymentProcessor
from actors.shipments import ShipmentCoordinator
from marketplace.config import Durability, Settings
from marketplace.domain.cart import Cart
from marketplace.domain.catalog import Product
from marketplace.domain.errors import PriceChanged
from marketplace.domain.inventory import ReserveOutcome
from marketplace.domain.orders import (
    FailureReason,
    Order,
    OrderLine,
    OrderStatus,
    PlaceOrder,
    ShippingAddress,
)
from marketplace.domain.payments import Payment, PaymentStatus
from marketplace.domain.shipments import Shipment, ShipmentStatus
from marketplace.domain.users import Principal, Role
from marketplace.store import migrate
from marketplace.store import orders as store
from marketplace.store.writer import Writer
from tests.unit.factories import BUYER, address, make_product

pytestmark = pytest.mark.unit

IN_MEMORY = Settings(durability=Durability.NONE, product_lease_s=0).model_dump()
P1, P2 = make_product(1, price_cents=250), make_product(2, price_cents=400)


class FakePeers:
    """``OrderPeers`` over in-process actors; ``charge_gate`` holds charges until set."""

    def __init__(self, products: list[Product]) -> None:
        self.catalog = {product.id: product for product in products}
        self.inventory = InventoryPartition(IN_MEMORY)
        self.payments = PaymentProcessor(IN_MEMORY)
        self.shipments = ShipmentCoordinator(IN_MEMORY)
        self.carts = CartShard(IN_MEMORY)
        self.told_sellers: list[Order] = []
        self.charge_gate = asyncio.Event()
        self.charge_gate.set()
        self.charging = asyncio.Event()  # set once a charge has been asked for
        self.charges = 0

    async def resolve(self) -> None:
        await asyncio.gather(
            self.inventory.ready(),
            self.payments.ready(),
            self.shipments.ready(),
            self.carts.ready(),
        )

    def partitions(self, product_ids: list[str]) -> dict[int, list[str]]:
        return {0: list(product_ids)}

    async def products(self, product_ids: list[str]) -> dict[str, Product]:
        return {pid: self.catalog[pid] for pid in product_ids if pid in self.catalog}

    async def get_cart(self, buyer_id: str) -> Cart:
        return await self.carts.get_cart(buyer_id)

    def remove_cart_lines(self, buyer_id: str, lines: list[OrderLine]) -> None:
        asyncio.get_running_loop().create_task(self.carts.remove_lines(buyer_id, lines))

    async def reserve(
        self, partition: int, order_id: str, lines: list[tuple[str, int]]
    ) -> ReserveOutcome:
        return await self.inventory.reserve(order_id, lines)

    async def commit(self, partition: int, order_id: str) -> None:
        await self.inventory.commit(order_id)

    async def release(self, partition: int, order_id: str, product_ids: list[str]) -> None:
        await self.inventory.release(order_id, product_ids)

    async def charge(self, order_id: str, amount_cents: int, card_token: str) -> Payment:
        self.charging.set()
        await self.charge_gate.wait()
        self.charges += 1
        return await self.payments.charge(order_id, amount_cents, card_token)

    async def refund(self, order_id: str) -> Payment | None:
        return await self.payments.refund(order_id)

    async def cancel_charge(self, order_id: str) -> Payment:
        return await self.payments.cancel_charge(order_id)

    async def open_shipment(self, order: Order) -> Shipment:
        return await self.shipments.open_shipment(order)

    async def move_shipment(self, order_id: str, status: ShipmentStatus) -> Shipment:
        return await self.shipments.move(order_id, status)

    def order_changed(self, order: Order) -> None:
        self.told_sellers.append(order)


@pytest.fixture
async def peers() -> FakePeers:
    made = FakePeers([P1, P2])
    await made.resolve()
    for product, units in ((P1, 5), (P2, 1)):
        await made.inventory.adjust_stock(product.id, units, f"seed:{product.id}")
    return made


@pytest.fixture
async def coordinator(peers: FakePeers) -> AsyncIterator[OrderCoordinator]:
    made = OrderCoordinator(IN_MEMORY, peers=peers, writer=Writer(None, Durability.NONE))
    await made.ready()
    yield made


def checkout(key: str, lines: list[tuple[Product, int]], card: str = "tok_visa") -> PlaceOrder:
    return PlaceOrder(
        buyer_id=BUYER,
        idempotency_key=key,
        lines=tuple(OrderLine(product_id=p.id, quantity=q) for p, q in lines),
        card_token=card,
        shipping_address=ShippingAddress.model_validate(address()),
    )


async def test_a_checkout_reserves_charges_and_ships(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    order = await coordinator.place_order(checkout("k1", [(P1, 2), (P2, 1)]))
    assert order.status is OrderStatus.CONFIRMED and order.total_cents == 2 * 250 + 400
    stock = await peers.inventory.get_stock([P1.id, P2.id])
    assert (stock[P1.id].sold, stock[P1.id].reserved, stock[P2.id].sold) == (2, 0, 1)
    payment = await peers.payments.get(order.id)
    assert payment is not None and payment.status is PaymentStatus.CAPTURED
    assert payment.amount_cents == order.total_cents
    assert await peers.shipments.get(order.id) is not None
    assert [told.status for told in peers.told_sellers] == [OrderStatus.CONFIRMED]
    # the same request again answers the same order and charges nothing more
    again = await coordinator.place_order(checkout("k1", [(P1, 2), (P2, 1)]))
    assert again == order and peers.charges == 1


async def test_a_checkout_at_a_total_the_buyer_was_not_shown_is_refused_before_anything(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    shown = checkout("k-price", [(P1, 2)]).model_copy(update={"expected_total_cents": 2 * 200})
    with pytest.raises(PriceChanged) as caught:
        await coordinator.place_order(shown)
    assert caught.value.details["total_cents"] == 2 * 250
    assert [item["unit_price_cents"] for item in caught.value.details["items"]] == [250]
    assert len(coordinator.orders) == 0 and peers.charges == 0 and peers.told_sellers == []
    stock = (await peers.inventory.get_stock([P1.id]))[P1.id]
    assert (stock.available, stock.reserved) == (5, 0)
    # At the total it shows now, the same key goes through (nothing was recorded under it).
    agreed = shown.model_copy(update={"expected_total_cents": 2 * 250})
    assert (await coordinator.place_order(agreed)).status is OrderStatus.CONFIRMED


async def test_a_cart_checkout_records_the_price_the_cart_showed_beside_the_charged_one(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    await peers.carts.set_item(BUYER, P1.id, 2, P1)
    await peers.carts.set_item(BUYER, P2.id, 1, P2)
    peers.catalog[P1.id] = P1.model_copy(update={"price_cents": 300, "version": 2})
    from_cart = checkout("k-cart", []).model_copy(update={"lines": None})
    order = await coordinator.place_order(from_cart)
    assert order.status is OrderStatus.CONFIRMED
    by_id = {item.product_id: item for item in order.items}
    # Charged at the current price; the cart's price kept beside it.
    assert (by_id[P1.id].unit_price_cents, by_id[P1.id].shown_unit_price_cents) == (300, 250)
    assert (by_id[P1.id].product_version, by_id[P2.id].shown_unit_price_cents) == (2, 400)
    assert order.total_cents == 2 * 300 + 400
    payment = await peers.payments.get(order.id)
    assert payment is not None and payment.amount_cents == order.total_cents
    assert order.public()["items"][0]["shown_unit_price_cents"] is not None


async def test_a_cart_checkout_at_the_total_the_cart_showed_is_refused_when_prices_moved(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    await peers.carts.set_item(BUYER, P1.id, 2, P1)
    peers.catalog[P1.id] = P1.model_copy(update={"price_cents": 300, "version": 2})
    shown = checkout("k-cart-409", []).model_copy(
        update={"lines": None, "expected_total_cents": 2 * 250}
    )
    with pytest.raises(PriceChanged) as caught:
        await coordinator.place_order(shown)
    assert caught.value.details["total_cents"] == 2 * 300
    [item] = caught.value.details["items"]
    assert (item["unit_price_cents"], item["shown_unit_price_cents"]) == (300, 250)
    assert len(coordinator.orders) == 0 and peers.charges == 0
    assert [i.quantity for i in (await peers.carts.get_cart(BUYER)).items] == [2]


async def test_a_checkout_of_named_items_records_no_shown_price(
    coordinator: OrderCoordinator,
) -> None:
    order = await coordinator.place_order(checkout("k-named", [(P1, 1)]))
    assert [item.shown_unit_price_cents for item in order.items] == [None]
    assert order.public()["items"][0]["shown_unit_price_cents"] is None


async def test_a_declined_card_releases_the_stock(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    order = await coordinator.place_order(checkout("k2", [(P1, 3)], card="tok_declined"))
    assert order.status is OrderStatus.CANCELLED
    assert order.failure_reason == FailureReason.PAYMENT_DECLINED
    stock = (await peers.inventory.get_stock([P1.id]))[P1.id]
    assert (stock.available, stock.reserved, stock.sold) == (5, 0, 0)
    payment = await peers.payments.get(order.id)
    assert payment is not None and payment.status is PaymentStatus.DECLINED
    assert await peers.shipments.get(order.id) is None


async def test_out_of_stock_charges_nothing_and_holds_nothing(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    order = await coordinator.place_order(checkout("k3", [(P1, 1), (P2, 2)]))
    assert order.status is OrderStatus.CANCELLED
    assert order.failure_reason == FailureReason.OUT_OF_STOCK
    assert peers.charges == 0 and await peers.payments.get(order.id) is None
    stock = await peers.inventory.get_stock([P1.id, P2.id])
    assert all(item.reserved == 0 and item.sold == 0 for item in stock.values())


async def test_cancelling_a_confirmed_order_refunds_and_restocks(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    from marketplace.domain.users import Principal, Role

    order = await coordinator.place_order(checkout("k4", [(P1, 2)]))
    cancelled = await coordinator.cancel_order(Principal(id=BUYER, role=Role.BUYER), order.id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.failure_reason == FailureReason.CANCELLED_BY_BUYER
    payment = await peers.payments.get(order.id)
    assert payment is not None and payment.status is PaymentStatus.REFUNDED
    stock = (await peers.inventory.get_stock([P1.id]))[P1.id]
    assert (stock.available, stock.sold) == (5, 0)
    shipment = await peers.shipments.get(order.id)
    assert shipment is not None and shipment.status is ShipmentStatus.CANCELLED


async def test_a_new_coordinator_resumes_a_saga_left_half_done(
    peers: FakePeers, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    await migrate.upgrade_async(url)
    on_disk: dict[str, Any] = {**IN_MEMORY, "durability": "sync", "database_url": url}

    first = OrderCoordinator(on_disk, peers=peers)
    await first.ready()
    peers.charge_gate.clear()  # the charge never answers: the coordinator "crashes" waiting
    command = checkout("k5", [(P1, 2)])
    placing = asyncio.create_task(first.place_order(command))
    await asyncio.wait_for(peers.charging.wait(), 10)  # reserved, and waiting for the charge
    placing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await placing
    await first.writer.close()
    assert first.engine is not None
    await first.engine.dispose()

    peers.charge_gate.set()
    second = OrderCoordinator(on_disk, peers=peers)
    await second.ready()
    order_id = command.order_id()
    assert order_id in second.orders  # loaded from the store
    await asyncio.wait_for(asyncio.gather(*second._resumes), 10)
    resumed = second.orders.get(order_id)
    assert resumed is not None
    assert resumed.status is OrderStatus.CONFIRMED and second.counters["resumed"] == 1
    assert peers.charges == 1
    assert (await peers.inventory.get_stock([P1.id]))[P1.id].sold == 2
    # the buyer's retry meets the resumed order
    assert await second.place_order(command) == resumed
    await second.writer.close()
    assert second.engine is not None
    await second.engine.dispose()


CARRIER = Principal(id="carrier", role=Role.CARRIER)


class BrokenShipments(FakePeers):
    """Peers whose shipment coordinator refuses every move."""

    async def move_shipment(self, order_id: str, status: ShipmentStatus) -> Shipment:
        raise RuntimeError("the shipment coordinator is down")


class RefusingWriter(Writer):
    """A writer that refuses every write (a failure no retry waits out)."""

    async def write_until_done(self, changes: Any, what: str) -> None:
        raise RuntimeError(f"cannot write {what}")


async def test_a_failed_shipment_move_leaves_the_order_as_it_was() -> None:
    peers = BrokenShipments([P1])
    await peers.resolve()
    await peers.inventory.adjust_stock(P1.id, 5, f"seed:{P1.id}")
    coordinator = OrderCoordinator(IN_MEMORY, peers=peers, writer=Writer(None, Durability.NONE))
    await coordinator.ready()
    order = await coordinator.place_order(checkout("k6", [(P1, 1)]))
    assert order.status is OrderStatus.CONFIRMED
    with pytest.raises(RuntimeError):
        await coordinator.move_shipment(CARRIER, order.id, ShipmentStatus.SHIPPED)
    assert coordinator.orders.get(order.id) == order
    told = [o.status for o in peers.told_sellers]
    assert told == [OrderStatus.CONFIRMED]


async def test_a_failed_save_of_a_shipment_move_leaves_the_order_as_it_was(
    coordinator: OrderCoordinator, peers: FakePeers
) -> None:
    order = await coordinator.place_order(checkout("k7", [(P1, 1)]))
    coordinator.writer = RefusingWriter(None, Durability.NONE)
    with pytest.raises(RuntimeError):
        await coordinator.move_shipment(CARRIER, order.id, ShipmentStatus.SHIPPED)
    assert coordinator.orders.get(order.id) == order
    assert [o.status for o in peers.told_sellers] == [OrderStatus.CONFIRMED]


async def test_a_shipment_move_is_stored_then_remembered(peers: FakePeers, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    await migrate.upgrade_async(url)
    on_disk: dict[str, Any] = {**IN_MEMORY, "durability": "sync", "database_url": url}
    coordinator = OrderCoordinator(on_disk, peers=peers)
    await coordinator.ready()
    try:
        order = await coordinator.place_order(checkout("k8", [(P1, 1)]))
        for step, status in (
            (ShipmentStatus.SHIPPED, OrderStatus.SHIPPED),
            (ShipmentStatus.DELIVERED, OrderStatus.DELIVERED),
        ):
            shipment = await coordinator.move_shipment(CARRIER, order.id, step)
            assert shipment.status is step
            stored, _ = await store.load_stored(coordinator.database, order.id)
            assert stored is not None and stored.status is status
            assert coordinator.orders.get(order.id) == stored
        # repeating the last move changes nothing and is not refused
        again = await coordinator.move_shipment(CARRIER, order.id, ShipmentStatus.DELIVERED)
        assert again.status is ShipmentStatus.DELIVERED
        assert [o.status for o in peers.told_sellers][-2:] == [
            OrderStatus.SHIPPED,
            OrderStatus.DELIVERED,
        ]
    finally:
        await coordinator.writer.close()
        await coordinator.database.dispose()
