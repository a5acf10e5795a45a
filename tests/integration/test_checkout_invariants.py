"""Invariants I1-I3 under concurrency and faults, on real Ray with SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
import ray
from sqlalchemy import func, select

from actors.directory import INVENTORY, PAYMENTS
from actors.protocols import InventoryPartitionApi, PaymentProcessorApi
from actors.runtime import Runtime
from marketplace.domain.errors import IdempotencyKeyReused, InvalidInput, NotFound
from marketplace.domain.orders import Order, OrderStatus
from marketplace.store.snapshot import load_audit_data
from marketplace.store.tables import ledger_entries, orders, outbox, stock_movements
from tests.integration.market import Market, build_market, principal

pytestmark = pytest.mark.integration

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
UNITS = [10, 10, 10, 10, 10]  # 50 units over five products on different partitions
CHECKOUTS = 200
VICTIMS = ("inventory-0", "orders-0")
KILL_STREAMS = 20


def _random_items(rng: random.Random, market: Market) -> list[dict[str, Any]]:
    """One to three distinct products, usually spanning partitions."""
    chosen = rng.sample(market.products, rng.randint(1, 3))
    return [{"product_id": p.id, "quantity": rng.randint(1, 2)} for p in chosen]


async def _race(
    runtime: Runtime, market: Market, *, kill_midway: bool = False
) -> tuple[list[Order], list[int]]:
    """Run the checkouts; with ``kill_midway``, kill inventory-0 then orders-0 while they run.

    Without kills all checkouts start at once. With kills they run as 20 concurrent streams
    of one checkout after another: answers come back in batches, and 200 checkouts started at
    once can all be answered in the same instant, leaving no moment to kill anything midway.
    Returns the orders and the victims' process ids from before the race.
    """
    client = runtime.client
    assert client is not None
    rng = random.Random(42)
    requests = [
        (market.buyers[i % len(market.buyers)].id, f"race-{i}", _random_items(rng, market))
        for i in range(CHECKOUTS)
    ]
    streams = KILL_STREAMS if kill_midway else CHECKOUTS
    placed: dict[int, Order] = {}
    in_flight: set[int] = set()
    first_answer = asyncio.Event()

    async def stream(start: int) -> None:
        for i in range(start, CHECKOUTS, streams):
            buyer_id, key, items = requests[i]
            in_flight.add(i)
            placed[i] = await client.place_order(buyer_id, key, items=items)
            in_flight.discard(i)
            first_answer.set()

    namespace = runtime.settings.namespace
    victims = [ray.get_actor(name, namespace=namespace) for name in VICTIMS]
    pids = [(await victim.ready.remote())["pid"] for victim in victims]
    runs = asyncio.gather(*(stream(start) for start in range(streams)))
    if kill_midway:
        # The first kill waits for the first answer, so checkouts are flowing whatever the
        # machine's speed; the second follows while the first victim is still restarting.
        await first_answer.wait()
        for victim in victims:
            assert in_flight, "no checkout was in flight at the kill"
            ray.kill(victim, no_restart=False)
            await asyncio.sleep(0.2)
    await asyncio.wait_for(runs, timeout=300)
    assert len(placed) == CHECKOUTS
    return [placed[i] for i in range(CHECKOUTS)], pids


async def _assert_invariants(runtime: Runtime, market: Market, placed: list[Order]) -> None:
    client = runtime.client
    assert client is not None
    # Every order ends terminal: confirmed or cancelled (nothing ships in this test).
    statuses = Counter(order.status for order in placed)
    assert set(statuses) <= {OrderStatus.CONFIRMED, OrderStatus.CANCELLED}, statuses
    assert statuses[OrderStatus.CONFIRMED] > 0
    assert statuses[OrderStatus.CANCELLED] > 0  # 50 units cannot satisfy 200 checkouts
    for order in placed:
        if order.status is OrderStatus.CANCELLED:
            assert order.failure_reason == "out_of_stock", order

    # I1: sold units are exactly the confirmed quantities, and never above stock.
    sold_by_product: Counter[str] = Counter()
    for order in placed:
        if order.status is OrderStatus.CONFIRMED:
            for item in order.items:
                sold_by_product[item.product_id] += item.quantity
    for product, units in zip(market.products, UNITS, strict=True):
        stock = await client.get_stock(product.id)
        assert stock.sold == sold_by_product[product.id] <= units
        assert stock.reserved == 0
        assert stock.available == units - stock.sold >= 0

    # I2: net captures equal confirmed totals, one capture per order at most.
    confirmed_total = sum(o.total_cents for o in placed if o.status is OrderStatus.CONFIRMED)
    payments = [await client.get_payment(order.id) for order in placed]
    net = sum(p.captured_cents - p.refunded_cents for p in payments if p is not None)
    assert net == confirmed_total
    async with client.engine.connect() as conn:
        captures = (
            await conn.execute(
                select(ledger_entries.c.order_id, func.count())
                .where(ledger_entries.c.operation == "capture", ledger_entries.c.amount_cents > 0)
                .group_by(ledger_entries.c.order_id)
            )
        ).all()
    assert all(count == 1 for _, count in captures)
    assert len(captures) == statuses[OrderStatus.CONFIRMED]

    # The full audit (I1, I2, I3, I4, I6, memory == store) agrees.
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()


@pytest.mark.parametrize("database", DATABASES)
async def test_concurrent_checkouts_never_oversell(make_marketplace: Any, database: str) -> None:
    runtime = await make_marketplace(
        database, catalog_shards=2, inventory_partitions=3, order_coordinators=2
    )
    market = await build_market(runtime.client, stock=UNITS, buyers=20)
    placed, _ = await _race(runtime, market)
    await _assert_invariants(runtime, market, placed)


@pytest.mark.parametrize("database", DATABASES)
async def test_invariants_hold_when_actors_are_killed_midway(
    make_marketplace: Any, database: str
) -> None:
    runtime = await make_marketplace(
        database, catalog_shards=2, inventory_partitions=3, order_coordinators=2
    )
    market = await build_market(runtime.client, stock=UNITS, buyers=20)
    placed, pids = await _race(runtime, market, kill_midway=True)
    # Both kills took: each victim now answers from a new process.
    for name, pid_before in zip(VICTIMS, pids, strict=True):
        actor = ray.get_actor(name, namespace=runtime.settings.namespace)
        assert (await actor.ready.remote())["pid"] != pid_before, name
    # The killed coordinator came back and finished what it had (no pending order left).
    stats = await runtime.client.order_stats()
    assert stats.get("status_pending", 0) == 0
    await _assert_invariants(runtime, market, placed)


async def test_tiny_caches_keep_the_invariants_through_kills(make_marketplace: Any) -> None:
    # Each inventory partition and order coordinator keeps one settled order, each catalog
    # shard one listing key, and the payment processor, shipment coordinator and seller view
    # one order's records in memory: everything else they decide on is read back from the
    # store.
    runtime = await make_marketplace(
        "sqlite",
        catalog_shards=2,
        inventory_partitions=3,
        order_coordinators=2,
        inventory_cache_size=1,
        catalog_cache_size=1,
        order_cache_size=1,
        payment_cache_size=1,
        shipment_cache_size=1,
        seller_cache_size=1,
    )
    client = runtime.client
    market = await build_market(client, stock=UNITS, buyers=20)
    placed, _ = await _race(runtime, market, kill_midway=True)
    await _assert_invariants(runtime, market, placed)

    # Cancelling sold orders, long settled and forgotten, returns their units and refunds
    # their payments once, also when the release or refund arrives again (a retried call).
    cancelled = [o for o in placed if o.status is OrderStatus.CONFIRMED][:5]
    for order in cancelled:
        buyer = next(b for b in market.buyers if b.id == order.buyer_id)
        done = await client.cancel_order(principal(buyer), order.id)
        assert done.status is OrderStatus.CANCELLED
    for order in cancelled:
        for item in order.items:
            owner = client.directory.route(INVENTORY, item.product_id)
            await owner.call(InventoryPartitionApi.release, order.id, [item.product_id])
        processor = client.directory.route(PAYMENTS, order.id)
        await processor.call(PaymentProcessorApi.refund, order.id)
    still_sold: Counter[str] = Counter()
    for order in placed:
        if order.status is OrderStatus.CONFIRMED and order not in cancelled:
            for item in order.items:
                still_sold[item.product_id] += item.quantity
    for product in market.products:
        stock = await client.get_stock(product.id)
        assert (stock.sold, stock.reserved) == (still_sold[product.id], 0)
    report = await client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()


async def test_replayed_idempotency_key_makes_one_order(shared_marketplace: Any) -> None:
    await _replay_one_key(shared_marketplace)


@pytest.mark.postgres
async def test_replayed_idempotency_key_makes_one_order_on_postgres(
    make_marketplace: Any,
) -> None:
    await _replay_one_key(await make_marketplace("postgres"))


async def _replay_one_key(runtime: Any) -> None:
    client = runtime.client
    market = await build_market(client, stock=[100, 100], buyers=1)
    buyer = market.buyers[0]
    items = [{"product_id": p.id, "quantity": 3} for p in market.products]

    replies = await asyncio.gather(
        *(client.place_order(buyer.id, "same-key", items=items) for _ in range(20))
    )
    assert {order.id for order in replies} == {replies[0].id}
    assert {order.status for order in replies} == {OrderStatus.CONFIRMED}
    for product in market.products:
        assert (await client.get_stock(product.id)).sold == 3
    payment = await client.get_payment(replies[0].id)
    assert payment is not None and payment.captured_cents == replies[0].total_cents

    before = await _row_counts(client)
    with pytest.raises(IdempotencyKeyReused):
        await client.place_order(
            buyer.id, "same-key", items=[{"product_id": market.products[0].id, "quantity": 1}]
        )
    assert await _row_counts(client) == before
    data = await load_audit_data(client.engine)
    assert sum(1 for e in data.ledger or [] if e.operation == "capture" and e.amount_cents > 0) == 1


async def _row_counts(client: Any) -> tuple[int, ...]:
    counts = []
    async with client.engine.connect() as conn:
        for table in (orders, outbox, stock_movements, ledger_entries):
            counts.append(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return tuple(counts)


async def test_bad_input_is_refused_and_changes_nothing(shared_marketplace: Any) -> None:
    from marketplace.domain.catalog import parse_draft
    from marketplace.domain.ids import new_id

    client = shared_marketplace.client
    market = await build_market(client, stock=[5], buyers=1)
    buyer, product = market.buyers[0], market.products[0]
    before = await _row_counts(client)
    stock_before = await client.get_stock(product.id)

    cases: list[tuple[type[Exception], list[dict[str, Any]], str]] = [
        (NotFound, [{"product_id": new_id("prd"), "quantity": 1}], "unknown product"),
        (InvalidInput, [{"product_id": product.id, "quantity": 0}], "quantity"),
        (InvalidInput, [{"product_id": product.id, "quantity": -2}], "quantity"),
        (InvalidInput, [{"product_id": product.id, "quantity": 1001}], "quantity"),
        (InvalidInput, [{"product_id": product.id, "quantity": "3"}], "quantity"),
        (InvalidInput, [{"product_id": "not-an-id", "quantity": 1}], "product id"),
        (InvalidInput, [{"product_id": "prd_XYZ", "quantity": 1}], "product id"),
        (InvalidInput, [], "at least one item"),
    ]
    for i, (error, items, words) in enumerate(cases):
        with pytest.raises(error) as caught:
            await client.place_order(buyer.id, f"bad-{i}", items=items)
        assert words in str(caught.value), (items, str(caught.value))
    with pytest.raises(InvalidInput, match="buyer_id"):
        await client.place_order(
            "usr_nope", "bad-buyer", items=[{"product_id": product.id, "quantity": 1}]
        )
    with pytest.raises(InvalidInput, match="price_cents"):
        parse_draft({"name": "x", "category": "c", "price_cents": -1})
    with pytest.raises(InvalidInput, match="delta"):
        await client.adjust_stock(_seller(market), product.id, 0)
    with pytest.raises(NotFound):
        await client.get_product(new_id("prd"))
    with pytest.raises(InvalidInput):
        await client.get_product("prd_../../etc")

    assert await _row_counts(client) == before
    assert await client.get_stock(product.id) == stock_before


def _seller(market: Market) -> Any:
    from tests.integration.market import principal

    return principal(market.seller)
