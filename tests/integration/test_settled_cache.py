"""Bounded memory of the payment processors, shipment coordinators and the seller view, through
real Ray actors on PostgreSQL (the in-process unit tests, test_*_memory.py, read back from
SQLite; one store here keeps the suite within its time): with caches of two, each holds at most
two orders' records after many orders, yet a repeated charge or refund of an order it let go of
moves no money, a shipment move is still idempotent and follows the state machine, a stale
snapshot changes no dashboard, and restarted actors (which load nothing, since the store holds
more than fits) answer every old order while the audit stays clean."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import ray
from sqlalchemy import select

from actors.directory import PAYMENTS, SELLERS, SHIPMENTS
from actors.protocols import PaymentProcessorApi, SellerViewApi, ShipmentCoordinatorApi
from marketplace.domain.errors import Conflict
from marketplace.domain.ids import sibling_id
from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.payments import PaymentStatus
from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Principal, Role
from marketplace.store import payments as payment_store
from marketplace.store.tables import ledger_entries
from tests.integration.market import build_market

pytestmark = pytest.mark.integration

ACTORS, CACHE, ORDERS = 2, 2, 10
CARRIER = Principal(id="usr_carrier", role=Role.CARRIER)


async def _held(actor: Any, field: str) -> list[str]:
    """The order ids an actor's memory holds in ``field`` (its cache), read in its process."""
    return list(
        await actor.__ray_call__.remote(lambda self, name: list(getattr(self, name)), field)
    )


async def _holds(runtime: Any, kind: str, field: str, count: int) -> set[str]:
    namespace = runtime.settings.namespace
    held: set[str] = set()
    for index in range(count):
        ids = await _held(ray.get_actor(f"{kind}-{index}", namespace=namespace), field)
        assert len(ids) <= CACHE, f"{kind}-{index} holds {len(ids)} orders"
        held.update(ids)
    return held


async def _money_moves(client: Any, order_id: str) -> list[str]:
    async with client.engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.operation)
            .where(ledger_entries.c.order_id == order_id, ledger_entries.c.amount_cents > 0)
            .order_by(ledger_entries.c.id)
        )
        return list(rows.scalars())


async def _restarted(runtime: Any, names: list[str]) -> None:
    """Kill the named actors and wait until each answers from a new process."""
    namespace = runtime.settings.namespace
    actors = [ray.get_actor(name, namespace=namespace) for name in names]
    pids = [(await actor.ready.remote())["pid"] for actor in actors]
    for actor in actors:
        ray.kill(actor, no_restart=False)
    for actor, pid in zip(actors, pids, strict=True):
        while True:
            if (await actor.ready.remote())["pid"] != pid:
                break
            await asyncio.sleep(0.05)


async def _push_out(
    runtime: Any,
    placed: list[Order],
    buyer_id: str,
    line: Any,
    kind: str,
    field: str,
    order_id: str,
) -> None:
    """Place orders until memory lets ``order_id``'s record go."""
    for _ in range(100):
        if order_id not in await _holds(runtime, kind, field, ACTORS):
            return
        order = await runtime.client.place_order(buyer_id, f"k{len(placed)}", items=line)
        placed.append(order)
    raise AssertionError(f"{kind} never let {order_id} go")


def _let_go(placed: list[Order], held: set[str], skip: set[str]) -> Order:
    """An order whose record memory no longer holds."""
    return next(order for order in placed if order.id not in held and order.id not in skip)


@pytest.mark.postgres
async def test_settled_records_are_a_bounded_cache(make_marketplace: Any) -> None:
    runtime = await make_marketplace(
        "postgres",
        payment_processors=ACTORS,
        shipment_coordinators=ACTORS,
        payment_cache_size=CACHE,
        shipment_cache_size=CACHE,
        seller_cache_size=CACHE,
    )
    client = runtime.client
    market = await build_market(client, stock=[100], buyers=1)
    buyer = market.buyers[0]
    me = Principal(id=buyer.id, role=Role.BUYER)
    line = [{"product_id": market.products[0].id, "quantity": 1}]
    placed = [await client.place_order(buyer.id, f"k{n}", items=line) for n in range(ORDERS)]
    assert all(order.status is OrderStatus.CONFIRMED for order in placed)
    await client.flush()
    seller = market.seller.id
    board = await client.dashboard(seller)
    assert (board.orders_count, board.open_orders) == (ORDERS, ORDERS)

    # Memory is bounded: two records per actor, whatever the number of orders.
    payments = await _holds(runtime, "payments", "payments", ACTORS)
    shipments = await _holds(runtime, "shipments", "shipments", ACTORS)
    facts = await _holds(runtime, "sellers", "facts", 1)
    assert len(facts) <= CACHE

    # A repeated charge of an order whose payment memory let go of: the same payment, and
    # still one capture.
    charged = _let_go(placed, payments, set())
    processor = client.directory.route(PAYMENTS, charged.id)
    payment = await payment_store.load_one(client.engine, charged.id)
    assert payment is not None and payment.status is PaymentStatus.CAPTURED
    again = await processor.call(PaymentProcessorApi.charge, charged.id, 1, "tok_visa")
    assert again == payment
    moves = await _money_moves(client, charged.id)
    assert (moves.count("capture"), moves.count("refund")) == (1, 0)

    # A cancel refunds once; a refund repeated after memory let the payment go refunds nothing.
    cancelled = await client.cancel_order(me, charged.id)
    assert cancelled.status is OrderStatus.CANCELLED
    await _push_out(runtime, placed, buyer.id, line, "payments", "payments", charged.id)
    refunded = await client.directory.route(PAYMENTS, charged.id).call(
        PaymentProcessorApi.refund, charged.id
    )
    assert refunded is not None and refunded.status is PaymentStatus.REFUNDED
    moves = await _money_moves(client, charged.id)
    assert (moves.count("capture"), moves.count("refund")) == (1, 1)

    # Shipments: a move of one memory let go of follows its stored status, a repeat is a no-op,
    # and a move the state machine forbids is refused.
    shipments = await _holds(runtime, "shipments", "shipments", ACTORS)
    shipped = _let_go(placed, shipments, {charged.id})
    moved = await client.move_shipment(
        CARRIER, sibling_id(shipped.id, "shp"), ShipmentStatus.SHIPPED
    )
    assert moved.status is ShipmentStatus.SHIPPED
    await _push_out(runtime, placed, buyer.id, line, "shipments", "shipments", shipped.id)
    coordinator = client.directory.route(SHIPMENTS, shipped.id)
    assert (
        await coordinator.call(ShipmentCoordinatorApi.move, shipped.id, ShipmentStatus.SHIPPED)
        == moved
    )
    with pytest.raises(Conflict):
        await coordinator.call(ShipmentCoordinatorApi.move, shipped.id, ShipmentStatus.CANCELLED)
    opened = await coordinator.call(ShipmentCoordinatorApi.open_shipment, shipped)
    assert opened == moved  # opening again is answered, not a second shipment
    assert (await client.get_order(me, shipped.id)).status is OrderStatus.SHIPPED

    # The seller view: a stale or repeated snapshot of an order whose facts it let go of
    # changes nothing; the dashboard counts every order once.
    await client.flush()
    facts = await _holds(runtime, "sellers", "facts", 1)
    stale = _let_go(placed, facts, {charged.id, shipped.id})
    view = client.directory.every(SELLERS)[0]
    before = await client.dashboard(seller)
    assert await view.call(SellerViewApi.apply, stale) == 0
    cancelled_stale = await view.call(SellerViewApi.apply, charged)  # v2 confirmed, now v3+
    assert cancelled_stale == 0
    after = await client.dashboard(seller)
    assert after.model_dump(exclude={"as_of", "as_of_version"}) == before.model_dump(
        exclude={"as_of", "as_of_version"}
    )
    sold = len(placed) - 1  # one cancelled
    assert (after.orders_count, after.items_sold, after.open_orders) == (sold, sold, sold - 1)

    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.summary()

    # Restarted, they load nothing (the store holds more than fits), yet answer every order.
    names = [
        *(f"payments-{i}" for i in range(ACTORS)),
        *(f"shipments-{i}" for i in range(ACTORS)),
        "sellers-0",
    ]
    await _restarted(runtime, names)
    assert await _holds(runtime, "payments", "payments", ACTORS) == set()
    assert await _holds(runtime, "shipments", "shipments", ACTORS) == set()
    assert await _holds(runtime, "sellers", "facts", 1) == set()
    restarted = await client.dashboard(seller)
    assert restarted.model_dump(exclude={"as_of_version"}) == after.model_dump(
        exclude={"as_of_version"}
    )
    assert (await client.get_payment(charged.id)) == refunded
    assert (await client.get_shipment(CARRIER, shipped.id)) == moved
    delivered = await client.move_shipment(
        CARRIER, sibling_id(shipped.id, "shp"), ShipmentStatus.DELIVERED
    )
    assert delivered.status is ShipmentStatus.DELIVERED
    fresh = await client.place_order(buyer.id, "k-new", items=line)
    assert fresh.status is OrderStatus.CONFIRMED
    await client.flush()
    board = await client.dashboard(seller)
    assert (board.orders_count, board.open_orders) == (sold + 1, sold)  # one more, one delivered
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.summary()
