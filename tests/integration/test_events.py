"""Invariants I4 and I5 through the RabbitMQ bridge, both ways, on the real broker.

The broker is MARKETPLACE_TEST_AMQP_URL (default: the local one). These tests fail, not skip,
when it is missing. Each test gets its own exchange and queue names (settings
``events_exchange``, ``inbound_exchange``, ``inbound_queue``), so tests never see each other's
events, and deletes only what it created. One test stops and starts the broker application
(``rabbitmqctl stop_app`` / ``start_app``); it always starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
import pytest_asyncio
import ray
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from sqlalchemy import func, select

from actors import scrape
from actors.directory import INBOUND
from actors.protocols import InboundConsumerApi
from actors.runtime import Runtime
from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Principal, Role
from marketplace.events import outbox
from marketplace.events.consumer import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    ROUTING_KEY_HEADER,
    Consumer,
)
from marketplace.events.envelope import Envelope
from marketplace.events.messages import InboundMessage
from marketplace.events.publisher import Publisher, PublishFailed
from marketplace.events.topology import Topology, declare_events_exchange
from marketplace.store.tables import inbox, stock_movements
from marketplace.store.tables import outbox as outbox_table
from tests.integration.market import Market, build_market

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("MARKETPLACE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ADMIN = Principal(id="usr_admin", role=Role.ADMIN)
REPO = Path(__file__).resolve().parents[2]


# -- the broker, per test ----------------------------------------------------------------------


@dataclass
class Broker:
    """A connection to the test broker and this test's own names."""

    connection: AbstractConnection
    channel: AbstractChannel
    topology: Topology
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Marketplace settings that bridge to this test's exchanges and queues."""
        return {
            "amqp_url": AMQP_URL,
            "events_exchange": self.topology.events_exchange,
            "inbound_exchange": self.topology.inbound_exchange,
            "inbound_queue": self.topology.inbound_queue,
            "relay_poll_interval_s": 0.05,
            **overrides,
        }

    async def tap(self) -> str:
        """A durable queue bound to every event of this test's events exchange (it must survive
        a broker restart, or events confirmed before the restart would be lost to the test)."""
        name = f"{self.topology.events_exchange}.tap-{len(self.queues)}"
        await declare_events_exchange(self.channel, self.topology)
        queue = await self.channel.declare_queue(name, durable=True)
        await queue.bind(self.topology.events_exchange, "#")
        self.queues.append(name)
        return name

    async def waiting(self, queue_name: str) -> int:
        """Messages ready in a queue (asked on a fresh channel: a robust channel answers a
        passive declaration from its cache)."""
        async with self.connection.channel() as channel:
            queue = await channel.declare_queue(queue_name, passive=True)
            assert queue.declaration_result.message_count is not None
            return queue.declaration_result.message_count

    async def drain(self, queue_name: str) -> list[AbstractIncomingMessage]:
        """Every message in a queue, in queue order (acknowledged)."""
        queue = await self.channel.declare_queue(queue_name, passive=True)
        messages = []
        while True:
            message = await queue.get(no_ack=True, fail=False, timeout=10)
            if message is None:
                return messages
            messages.append(message)

    async def publish_inbound(
        self, routing_key: str, body: bytes, message_id: str | None, **properties: Any
    ) -> None:
        """Publish as an outside system would, to this test's inbound exchange."""
        exchange = await self.channel.get_exchange(self.topology.inbound_exchange)
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                **properties,
            ),
            routing_key=routing_key,
        )

    async def dead_letters(self, count: int, within_s: float = 30) -> list[AbstractIncomingMessage]:
        """Wait for ``count`` messages in the dead-letter queue and take them."""
        queue = await self.channel.declare_queue(self.topology.dead_letter_queue, passive=True)
        found: list[AbstractIncomingMessage] = []
        deadline = time.monotonic() + within_s
        while len(found) < count:
            message = await queue.get(no_ack=True, fail=False, timeout=10)
            if message is not None:
                found.append(message)
                continue
            assert time.monotonic() < deadline, f"{len(found)} of {count} dead letters"
            await asyncio.sleep(0.1)
        return found


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[Broker]:
    """This test's names on the shared broker; everything named so is deleted afterwards.

    Request it before ``make_marketplace`` so that it outlives the marketplace's actors.
    """
    try:
        connection = await aio_pika.connect_robust(AMQP_URL, timeout=10)
    except Exception as exc:  # no skip: CI must not pass without the broker
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL}: {exc!r}")
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    topology = Topology(f"{prefix}.events", f"{prefix}.inbound", f"{prefix}.inbound")
    channel = await connection.channel()
    state = Broker(connection, channel, topology)
    try:
        yield state
    finally:
        await _delete_ours(connection, state)
        await connection.close()


async def _delete_ours(connection: AbstractConnection, state: Broker) -> None:
    topology = state.topology
    queues = [
        *state.queues,
        topology.inbound_queue,
        topology.dead_letter_queue,
        topology.archive_queue,
    ]
    exchanges = [
        *state.exchanges,
        topology.events_exchange,
        topology.inbound_exchange,
        topology.dead_letter_exchange,
    ]
    for name in queues:
        with contextlib.suppress(Exception):
            async with connection.channel() as channel:
                await channel.queue_delete(name)
    for name in exchanges:
        with contextlib.suppress(Exception):
            async with connection.channel() as channel:
                await channel.exchange_delete(name)


async def rabbitmqctl(*args: str, within_s: float = 120) -> None:
    """Run ``rabbitmqctl`` (the broker runs on this machine in the test environment)."""
    executable = shutil.which("rabbitmqctl")
    assert executable, "rabbitmqctl is needed to stop and start the broker"
    process = await asyncio.create_subprocess_exec(
        executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), within_s)
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {output.decode()}"


# -- the marketplace side ----------------------------------------------------------------------


async def wait_for(
    condition: Callable[[], Awaitable[bool]], within_s: float, what: str, every: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(every)


async def relay_stats(runtime: Runtime) -> dict[str, Any]:
    assert runtime.client is not None
    stats = await runtime.client.relay_stats()  # what /metrics publishes
    assert stats is not None
    return stats


async def relay_gauges_show(runtime: Runtime, published: int) -> None:
    """Until the relay's published gauge in Ray's metrics export says ``published``, lag 0
    and connected."""
    namespace = runtime.settings.namespace
    want = {"published": float(published), "lag": 0.0, "connected": 1.0}

    async def shown() -> bool:
        figures = {
            sample.labels["measure"]: sample.value
            for metric in scrape.summed((await scrape.fetch(scrape.node_exports()))[0], namespace)
            if metric.name == "ray_marketplace_event_relay"
            for sample in metric.samples
        }
        return all(figures.get(measure) == value for measure, value in want.items())

    await wait_for(shown, 30, f"the relay's gauges to show {want}", every=0.5)


async def inbound_stats(runtime: Runtime) -> dict[str, Any]:
    assert runtime.client is not None
    return await runtime.client.directory.at(INBOUND, 0).call(InboundConsumerApi.stats)


async def wait_published(runtime: Runtime, within_s: float = 90) -> None:
    """Until the relay's lag is zero."""

    async def drained() -> bool:
        return (await relay_stats(runtime))["lag"] == 0

    await wait_for(drained, within_s, "the relay to publish the outbox", every=0.2)


async def outbox_ids(runtime: Runtime) -> list[str]:
    assert runtime.client is not None
    async with runtime.client.engine.connect() as conn:
        rows = await conn.execute(select(outbox_table.c.id).order_by(outbox_table.c.position))
        return [row[0] for row in rows]


async def checkouts(runtime: Runtime, market: Market, count: int, tag: str) -> list[Order]:
    """``count`` checkouts, a few at a time, over the market's products."""
    client = runtime.client
    assert client is not None
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> Order:
        items = [
            {"product_id": market.products[(i + k) % len(market.products)].id, "quantity": 1}
            for k in range(1 + i % 2)
        ]
        async with gate:
            return await client.place_order(
                market.buyers[i % len(market.buyers)].id, f"{tag}-{i}", items=items
            )

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def received_envelopes(messages: list[AbstractIncomingMessage]) -> list[Envelope]:
    """The envelopes of the messages, checking each message's properties against its body."""
    envelopes = []
    for message in messages:
        envelope = Envelope.from_json(message.body)
        assert message.message_id == envelope.id
        assert message.routing_key == envelope.type
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        envelopes.append(envelope)
    return envelopes


def assert_delivery(envelopes: list[Envelope], expected_ids: list[str]) -> int:
    """Nothing lost, duplicates only as exact copies of the same id, and per subject the
    sequence increases in receive order once duplicates are dropped (I4, I5).
    Returns the number of duplicates."""
    first: dict[str, Envelope] = {}
    last_sequence: dict[str, int] = defaultdict(lambda: -1)
    duplicates = 0
    for envelope in envelopes:
        if envelope.id in first:
            assert envelope == first[envelope.id], "a duplicate differs from its original"
            duplicates += 1
            continue
        first[envelope.id] = envelope
        assert envelope.sequence > last_sequence[envelope.subject], (
            f"{envelope.subject}: {envelope.sequence} after {last_sequence[envelope.subject]}"
        )
        last_sequence[envelope.subject] = envelope.sequence
    missing = set(expected_ids) - set(first)
    assert not missing, f"{len(missing)} events never arrived, e.g. {sorted(missing)[:3]}"
    assert set(first) == set(expected_ids), "events arrived that are not in the outbox"
    return duplicates


# -- (a) every committed event arrives ---------------------------------------------------------


@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", DATABASES)
async def test_every_committed_event_is_published(
    broker: Broker, make_marketplace: Any, database: str
) -> None:
    tap = await broker.tap()
    runtime = await make_marketplace(database, **broker.settings())
    market = await build_market(runtime.client, stock=[20, 20, 20], buyers=6)
    placed = await checkouts(runtime, market, 40, "a")
    assert {order.status for order in placed} <= {OrderStatus.CONFIRMED, OrderStatus.CANCELLED}
    await wait_published(runtime)

    stats = await relay_stats(runtime)
    assert stats["connected"] is True and stats["lag"] == 0
    expected = await outbox_ids(runtime)
    envelopes = received_envelopes(await broker.drain(tap))
    assert assert_delivery(envelopes, expected) == 0  # no faults, no duplicates
    assert stats["published"] == len(expected)
    types = {envelope.type for envelope in envelopes}
    assert {"product.created", "stock.changed", "order.placed", "order.confirmed"} <= types
    assert {"payment.captured", "shipment.created"} <= types
    report = await runtime.client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()
    if database == "sqlite":  # the relay's gauges, as GET /metrics sums them (once is enough)
        await relay_gauges_show(runtime, published=len(expected))


@pytest.mark.timeout(240)
async def test_published_events_are_pruned_after_the_retention(
    broker: Broker, make_marketplace: Any
) -> None:
    # Retention of one second, considered five times a second: what the relay published is
    # soon gone from the outbox, and the audit still holds (it looks only at recent orders).
    runtime = await make_marketplace(
        "sqlite", **broker.settings(outbox_retention_s=1.0, retention_interval_s=0.2)
    )
    market = await build_market(runtime.client, stock=[20, 20], buyers=3)
    await checkouts(runtime, market, 10, "p")
    await wait_published(runtime)

    async def emptied() -> bool:
        return await outbox_ids(runtime) == []

    await wait_for(emptied, 30, "the relay to prune the published outbox", every=0.2)
    stats = await relay_stats(runtime)
    assert stats["pruned"] == stats["published"] > 0
    report = await runtime.client.audit(max_pending_age_s=0)
    assert report.ok, report.model_dump()


# -- (b) the broker stops and starts mid-stream ------------------------------------------------


@pytest.mark.timeout(300)
async def test_broker_restart_loses_nothing_and_keeps_order(
    broker: Broker, make_marketplace: Any
) -> None:
    tap = await broker.tap()
    runtime = await make_marketplace(**broker.settings())
    # Ample stock: the load runs for as long as the broker takes to come back, which on a
    # fast machine is more checkouts than any fixed small stock would cover.
    market = await build_market(runtime.client, stock=[1_000_000] * 4, buyers=8)
    stop = asyncio.Event()
    placed: list[Order] = []

    async def keep_buying() -> None:  # checkouts before, during and after the outage
        round_ = 0
        while not stop.is_set():
            placed.extend(await checkouts(runtime, market, 8, f"b{round_}"))
            round_ += 1

    load = asyncio.ensure_future(keep_buying())
    try:
        await wait_for(
            lambda: _has_published(runtime), 60, "the relay to publish something", every=0.05
        )
        await rabbitmqctl("stop_app")
        await asyncio.sleep(2)  # checkouts go on; their events wait in the outbox
        during = await relay_stats(runtime)
        assert not during["connected"]
        # The outage met committed events, or this test would not test a restart at all.
        assert during["lag"] > 0, during
    finally:
        await rabbitmqctl("start_app")
        await rabbitmqctl("await_startup")
        await asyncio.sleep(1)
        stop.set()
        await asyncio.wait_for(load, 120)
    assert placed and all(order.status is OrderStatus.CONFIRMED for order in placed)
    await wait_published(runtime, within_s=120)

    stats = await relay_stats(runtime)
    assert stats["connected"] is True
    expected = await outbox_ids(runtime)
    # Duplicates are allowed here (a publish whose confirm was cut may go again); losses,
    # strangers and out-of-order sequences are not, and assert_delivery fails on each.
    assert_delivery(received_envelopes(await broker.drain(tap)), expected)


async def _has_published(runtime: Runtime) -> bool:
    return bool((await relay_stats(runtime))["published"])


# -- (c) the relay dies between publishing and marking -----------------------------------------


@pytest.mark.timeout(240)
async def test_relay_killed_between_publish_and_mark(broker: Broker, make_marketplace: Any) -> None:
    tap = await broker.tap()
    runtime = await make_marketplace(**broker.settings(relay_mark_delay_s=1.0))
    market = await build_market(runtime.client, stock=[30, 30], buyers=4)
    load = asyncio.ensure_future(checkouts(runtime, market, 20, "c"))
    assert runtime.client is not None
    engine = runtime.client.engine

    async def published_not_marked() -> bool:
        async with engine.connect() as conn:
            marked = await conn.scalar(
                select(func.count())
                .select_from(outbox_table)
                .where(outbox_table.c.published_at.is_not(None))
            )
        return await broker.waiting(tap) > (marked or 0)

    await wait_for(published_not_marked, 60, "confirmed events not yet marked", every=0.02)
    relay = ray.get_actor("relay-0", namespace=runtime.settings.namespace)
    ray.kill(relay, no_restart=False)
    await asyncio.wait_for(load, 60)
    await checkouts(runtime, market, 10, "c-after")  # the marketplace goes on meanwhile
    await wait_published(runtime, within_s=120)

    expected = await outbox_ids(runtime)
    duplicates = assert_delivery(received_envelopes(await broker.drain(tap)), expected)
    assert duplicates > 0  # the restarted relay published again what it had not marked


# -- (d) inbound messages: once per message id; bad ones dead-lettered -------------------------


async def _stock_settled(runtime: Runtime, delivered: int) -> bool:
    stats = await inbound_stats(runtime)
    return bool(
        stats.get("processed", 0) + stats.get("duplicates", 0) + stats.get("dead_lettered", 0)
        >= delivered
    )


@pytest.mark.timeout(180)
async def test_inbound_replenishment_takes_effect_once(
    broker: Broker, make_marketplace: Any
) -> None:
    runtime = await make_marketplace(**broker.settings())
    client = runtime.client
    assert client is not None
    market = await build_market(client, stock=[5], buyers=1)
    product = market.products[0]
    await wait_for(lambda: _connected(runtime), 30, "the inbound consumer")

    message_id = "msg-" + uuid.uuid4().hex
    body = orjson.dumps({"product_id": product.id, "delta": 7})
    for _ in range(3):
        await broker.publish_inbound("stock.replenished", body, message_id)
    await wait_for(lambda: _stock_settled(runtime, 3), 30, "three deliveries handled")

    stock = await client.get_stock(product.id)
    assert stock.stocked == 12 and stock.available == 12
    async with client.engine.connect() as conn:
        movements = await conn.scalar(
            select(func.count())
            .select_from(stock_movements)
            .where(stock_movements.c.request_id == f"inbound:{message_id}")
        )
        recorded = await conn.scalar(
            select(inbox.c.routing_key).where(inbox.c.message_id == message_id)
        )
    assert movements == 1
    assert recorded == "stock.replenished"
    stats = await inbound_stats(runtime)
    assert stats["processed"] == 1 and stats["duplicates"] == 2 and stats["dead_lettered"] == 0

    # Bad messages: each dead-lettered with its reason, and nothing changes.
    before = await _counts(runtime)
    bad = [
        ("stock.replenished", b"{not json", "malformed JSON"),
        ("stock.replenished", b'{"product_id": "%s", "delta": -3}' % product.id.encode(), "delta"),
        ("stock.replenished", b'{"product_id": "prd_x", "delta": 3}', "product_id"),
        ("stock.replenished", orjson.dumps({"product_id": "prd_" + "0" * 32, "delta": 1}), ""),
        ("stock.stolen", b"{}", "unknown routing key"),
        ("shipment.delivered", b"[1, 2]", "JSON object"),
    ]
    ids = {}
    for routing_key, payload, _ in bad:
        ids[payload] = "bad-" + uuid.uuid4().hex
        await broker.publish_inbound(routing_key, payload, ids[payload])
    # (A message without a message id cannot be sent from Python: aiormq fills one in. The
    # unit tests cover it.)

    letters = await broker.dead_letters(len(bad))
    by_id = {letter.message_id: letter for letter in letters}
    for routing_key, payload, reason in bad:
        letter = by_id[ids[payload]]
        assert letter.body == payload
        assert letter.routing_key == routing_key
        error = str((letter.headers or {}).get(ERROR_HEADER, ""))
        assert error and reason in error, (payload, error)
    assert "unknown product" in str((by_id[ids[bad[3][1]]].headers or {}).get(ERROR_HEADER))
    assert await _counts(runtime) == before
    assert (await client.get_stock(product.id)).stocked == 12


async def _connected(runtime: Runtime) -> bool:
    return bool((await inbound_stats(runtime)).get("connected"))


async def _counts(runtime: Runtime) -> tuple[int, ...]:
    assert runtime.client is not None
    async with runtime.client.engine.connect() as conn:
        counts = []
        for table in (stock_movements, inbox, outbox_table):
            counts.append(int(await conn.scalar(select(func.count()).select_from(table)) or 0))
        return tuple(counts)


@pytest.mark.timeout(180)
async def test_inbound_delivery_marks_the_shipment_delivered_once(
    broker: Broker, make_marketplace: Any
) -> None:
    runtime = await make_marketplace(**broker.settings())
    client = runtime.client
    assert client is not None
    market = await build_market(client, stock=[5], buyers=1)
    order = await client.place_order(
        market.buyers[0].id, "d", items=[{"product_id": market.products[0].id, "quantity": 1}]
    )
    assert order.status is OrderStatus.CONFIRMED
    shipment = await client.get_shipment(ADMIN, order.id)
    assert shipment.status is ShipmentStatus.PENDING
    await wait_for(lambda: _connected(runtime), 30, "the inbound consumer")

    body = orjson.dumps({"shipment_id": shipment.id})
    first, second = "dlv-" + uuid.uuid4().hex, "dlv-" + uuid.uuid4().hex
    for message_id in (first, first, second):  # a redelivery, and a second notice
        await broker.publish_inbound("shipment.delivered", body, message_id)
    await wait_for(lambda: _stock_settled(runtime, 3), 30, "three deliveries handled")

    assert (await client.get_shipment(ADMIN, order.id)).status is ShipmentStatus.DELIVERED
    assert (await client.get_order(ADMIN, order.id)).status is OrderStatus.DELIVERED
    stats = await inbound_stats(runtime)
    assert stats["dead_lettered"] == 0 and stats["processed"] == 2
    async with client.engine.connect() as conn:
        updates = await conn.scalar(
            select(func.count())
            .select_from(outbox_table)
            .where(outbox_table.c.subject == shipment.id, outbox_table.c.type == "shipment.updated")
        )
    assert updates == 2  # shipped (implied by the delivery), then delivered: once each


@pytest.mark.timeout(120)
async def test_transient_failures_are_retried_then_dead_lettered(broker: Broker) -> None:
    """The consumer alone (no Ray): a failing handler is retried with a growing attempt count,
    succeeds when the failure clears, and is dead-lettered when it never does."""
    calls: dict[str, int] = defaultdict(int)
    flaky_for = {"flaky": 2, "broken": 1000}

    async def handler(message: InboundMessage) -> None:
        key = message.message_id.split("-")[0]
        calls[key] += 1
        if calls[key] <= flaky_for[key]:
            raise ConnectionError(f"{key} is down")

    consumer = Consumer(AMQP_URL, broker.topology, handler, None, max_attempts=3)
    task = asyncio.ensure_future(consumer.run())
    try:
        await wait_for(_truthy(lambda: consumer.connected), 30, "the consumer")
        body = orjson.dumps({"product_id": "prd_" + "1" * 32, "delta": 1})
        await broker.publish_inbound("stock.replenished", body, "flaky-1")
        await broker.publish_inbound("stock.replenished", body, "broken-1")
        (letter,) = await broker.dead_letters(1)
        await wait_for(_truthy(lambda: consumer.stats.processed == 1), 30, "the flaky one")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert calls == {"flaky": 3, "broken": 3}
    assert letter.message_id == "broken-1" and letter.routing_key == "stock.replenished"
    headers = letter.headers or {}
    assert "failed 3 times" in str(headers[ERROR_HEADER])
    assert "broken is down" in str(headers[ERROR_HEADER])
    assert headers[ATTEMPTS_HEADER] == 2
    assert consumer.stats.retried == 4 and consumer.stats.dead_lettered == 1


@pytest.mark.timeout(180)
async def test_the_sender_cannot_pick_its_routing_key_or_another_senders_ids(
    broker: Broker,
) -> None:
    """The consumer alone (no Ray): a routing-key header set by the sender is not trusted (the
    broker's routing key is), and a message id counts within its sender's validated user_id,
    which a retry keeps."""
    seen: list[str] = []
    failed_once: set[str] = set()

    async def handler(message: InboundMessage) -> None:
        seen.append(message.message_id)
        if message.message_id.startswith("guest/") and message.message_id not in failed_once:
            failed_once.add(message.message_id)
            raise ConnectionError("down once")

    consumer = Consumer(AMQP_URL, broker.topology, handler, None, max_attempts=3)
    task = asyncio.ensure_future(consumer.run())
    try:
        await wait_for(_truthy(lambda: consumer.connected), 30, "the consumer")
        body = orjson.dumps({"product_id": "prd_" + "1" * 32, "delta": 1})
        await broker.publish_inbound(
            "stock.stolen", body, "forged-1", headers={ROUTING_KEY_HEADER: "stock.replenished"}
        )
        (letter,) = await broker.dead_letters(1)
        # One id, two id spaces: an anonymous sender's and the broker-checked user guest's.
        await broker.publish_inbound("stock.replenished", body, "same-1")
        await broker.publish_inbound("stock.replenished", body, "same-1", user_id="guest")
        await wait_for(_truthy(lambda: consumer.stats.processed == 2), 30, "both")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "unknown routing key 'stock.stolen'" in str((letter.headers or {})[ERROR_HEADER])
    assert "forged-1" not in seen
    assert sorted(seen) == ["guest/same-1", "guest/same-1", "same-1"]  # retried as guest's
    assert consumer.stats.retried == 1


def _truthy(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def condition() -> bool:
        return check()

    return condition


# -- (e) no broker configured: events wait, then a configured runtime publishes them -----------


@pytest.mark.timeout(240)
async def test_events_wait_without_a_broker_then_get_published(
    broker: Broker, make_marketplace: Any
) -> None:
    runtime = await make_marketplace()
    client = runtime.client
    assert client is not None
    assert runtime.settings.amqp_url is None
    market = await build_market(client, stock=[50, 50], buyers=3)
    placed = await checkouts(runtime, market, 12, "e")
    assert all(order.status is OrderStatus.CONFIRMED for order in placed)
    waiting = await outbox.lag(client.engine)
    assert waiting == len(await outbox_ids(runtime)) > 0
    with pytest.raises(ValueError):
        ray.get_actor("relay-0", namespace=runtime.settings.namespace)
    await runtime.stop()

    tap = await broker.tap()
    settings = runtime.settings.model_copy(
        update={"namespace": "t" + uuid.uuid4().hex[:10], **broker.settings()}
    )
    configured = Runtime(settings)
    await configured.start()
    try:
        await wait_published(configured)
        expected = await outbox_ids(configured)
        assert len(expected) >= waiting
        assert_delivery(received_envelopes(await broker.drain(tap)), expected)
        stats = await relay_stats(configured)
        assert stats["lag"] == 0 and stats["published"] == len(expected)
    finally:
        await configured.stop()


@pytest.mark.timeout(180)
async def test_an_unreachable_broker_never_stops_the_marketplace(make_marketplace: Any) -> None:
    unreachable = "amqp://guest:guest@127.0.0.1:9/"  # nothing listens on the discard port
    runtime = await make_marketplace(amqp_url=unreachable)
    market = await build_market(runtime.client, stock=[20, 20], buyers=2)
    placed = await checkouts(runtime, market, 4, "x")
    assert all(order.status is OrderStatus.CONFIRMED for order in placed)
    await asyncio.sleep(1)  # a few failed connection attempts
    stats = await relay_stats(runtime)
    assert stats["connected"] is False and stats["published"] == 0
    assert stats["lag"] == len(await outbox_ids(runtime)) > 0
    assert "Connect" in str(stats["last_error"]) or "refused" in str(stats["last_error"])
    assert (await inbound_stats(runtime))["connected"] is False


# -- marketplace events tail -------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_events_tail_prints_the_chosen_types(broker: Broker) -> None:
    await broker.tap()  # so that the event the tail does not want still routes somewhere
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from marketplace.cli.events import events_app; events_app()",
        "tail",
        "--amqp-url",
        AMQP_URL,
        "--exchange",
        broker.topology.events_exchange,
        "--type",
        "order.*",
        "--type",
        "stock.changed",
        "--json",
        "--limit",
        "2",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert b"listening on" in line, line
        publisher = Publisher(AMQP_URL, broker.topology)
        await publisher.connect()
        sent = [_envelope("payment.captured", 1), _envelope("order.placed", 1)]
        sent.append(_envelope("stock.changed", 3))
        for envelope in sent:
            await publisher.publish(envelope)
        await publisher.close()
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    shown = [Envelope.from_json(line) for line in output.splitlines()]
    assert shown == sent[1:]


# -- the archive queue -------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_an_event_nobody_binds_goes_to_the_bounded_archive(broker: Broker) -> None:
    topology = dataclasses.replace(broker.topology, archive_max_length=2)
    publisher = Publisher(AMQP_URL, topology)
    await publisher.connect()
    sent = [_envelope("nobody.binds.this", n) for n in (1, 2, 3)]
    try:
        for envelope in sent:
            await publisher.publish(envelope)  # confirmed, not returned
    finally:
        await publisher.close()
    archived = received_envelopes(await broker.drain(topology.archive_queue))
    assert archived == sent[1:]  # the bound keeps the newest


@pytest.mark.timeout(120)
async def test_without_the_archive_an_event_nobody_binds_is_returned(broker: Broker) -> None:
    topology = dataclasses.replace(
        broker.topology, events_exchange=f"{broker.topology.events_exchange}.bare", archive=False
    )
    broker.exchanges.append(topology.events_exchange)
    publisher = Publisher(AMQP_URL, topology)
    await publisher.connect()
    try:
        with pytest.raises(PublishFailed, match="returned unroutable"):
            await publisher.publish(_envelope("nobody.binds.this", 1))
    finally:
        await publisher.close()
    async with broker.connection.channel() as channel:
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await channel.declare_queue(topology.archive_queue, passive=True)


def _envelope(event_type: str, sequence: int) -> Envelope:
    return Envelope(
        id="evt_" + uuid.uuid4().hex,
        type=event_type,
        source="test",
        subject="ord_" + uuid.uuid4().hex,
        sequence=sequence,
        time=datetime.now(UTC),
        data={"n": sequence},
    )
