"""Inbound messages: validation, request ids, attempt counting, and the consumer's decisions
(process, drop a duplicate, retry, dead-letter) with fake deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.events import consumer as consumer_module
from marketplace.events import inbox
from marketplace.events.consumer import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    ROUTING_KEY_HEADER,
    Consumer,
    attempts_of,
    retry_delay,
)
from marketplace.events.messages import (
    InboundMessage,
    Rejected,
    ShipmentDelivered,
    StockReplenished,
    parse,
    request_id_for,
)
from marketplace.events.topology import DELIVERY_LIMIT, Topology, queue_arguments
from marketplace.store.engine import create_engine
from marketplace.store.tables import metadata

pytestmark = pytest.mark.unit

PRODUCT = "prd_" + "a" * 32
SHIPMENT = "shp_" + "b" * 32


# -- parsing -----------------------------------------------------------------------------------


def test_valid_messages_parse() -> None:
    stock = parse("m1", "stock.replenished", orjson.dumps({"product_id": PRODUCT, "delta": 4}))
    assert stock.command == StockReplenished(product_id=PRODUCT, delta=4)
    assert stock.message_id == "m1" and stock.routing_key == "stock.replenished"
    shipped = parse(
        "m2", "shipment.delivered", b'{"shipment_id": "%s", "by": "x"}' % SHIPMENT.encode()
    )
    assert shipped.command == ShipmentDelivered(shipment_id=SHIPMENT)


def test_a_named_sender_has_an_id_space_of_its_own() -> None:
    body = orjson.dumps({"product_id": PRODUCT, "delta": 4})
    assert parse("m1", "stock.replenished", body, source="partner-a").message_id == "partner-a/m1"
    assert parse("m1", "stock.replenished", body, source=None).message_id == "m1"
    with pytest.raises(Rejected, match="with its sender"):
        parse("x" * 195, "stock.replenished", body, source="partner-a")


@pytest.mark.parametrize(
    ("message_id", "routing_key", "body", "reason"),
    [
        (None, "stock.replenished", b"{}", "missing message_id"),
        ("", "stock.replenished", b"{}", "missing message_id"),
        ("x" * 201, "stock.replenished", b"{}", "longer than 200"),
        ("m", "stock.stolen", b"{}", "unknown routing key 'stock.stolen'"),
        ("m", "", b"{}", "unknown routing key ''"),
        ("m", "stock.replenished", b"{not json", "malformed JSON"),
        ("m", "stock.replenished", b"\xff\xfe", "malformed JSON"),
        ("m", "stock.replenished", b"[1]", "JSON object"),
        ("m", "stock.replenished", b'{"product_id": "prd_1", "delta": 1}', "product_id"),
        (
            "m",
            "stock.replenished",
            b'{"product_id": "%s"}' % PRODUCT.encode(),
            "delta: Field required",
        ),
        ("m", "stock.replenished", b'{"product_id": "%s", "delta": 0}' % PRODUCT.encode(), "delta"),
        (
            "m",
            "stock.replenished",
            b'{"product_id": "%s", "delta": "3"}' % PRODUCT.encode(),
            "delta",
        ),
        (
            "m",
            "stock.replenished",
            b'{"product_id": "%s", "delta": 2.5}' % PRODUCT.encode(),
            "delta",
        ),
        (
            "m",
            "stock.replenished",
            b'{"product_id": "%s", "delta": true}' % PRODUCT.encode(),
            "delta",
        ),
        (
            "m",
            "stock.replenished",
            b'{"product_id": "%s", "delta": 1e12}' % PRODUCT.encode(),
            "delta",
        ),
        ("m", "shipment.delivered", b'{"shipment_id": "%s"}' % PRODUCT.encode(), "shipment_id"),
    ],
)
def test_invalid_messages_are_rejected_with_a_reason(
    message_id: str | None, routing_key: str, body: bytes, reason: str
) -> None:
    with pytest.raises(Rejected) as caught:
        parse(message_id, routing_key, body)
    assert reason in caught.value.reason


def test_request_ids_fit_the_stock_movements_column() -> None:
    assert request_id_for("abc") == "inbound:abc"
    long = request_id_for("x" * 200)
    assert long.startswith("inbound:") and len(long) <= 80
    assert long == request_id_for("x" * 200) != request_id_for("x" * 199 + "y")


def test_queue_arguments() -> None:
    topology = Topology()
    assert topology.dead_letter_exchange == "marketplace.inbound.dlx"
    assert topology.dead_letter_queue == "marketplace.inbound.dlq"
    assert queue_arguments(topology, quorum=True) == {
        "x-dead-letter-exchange": "marketplace.inbound.dlx",
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    assert queue_arguments(topology, quorum=False) == {
        "x-dead-letter-exchange": "marketplace.inbound.dlx"
    }


# -- the consumer's decisions, with fakes ------------------------------------------------------


class FakeMessage:
    def __init__(
        self,
        body: bytes,
        *,
        message_id: str | None = "m-1",
        routing_key: str = "stock.replenished",
        headers: dict[str, Any] | None = None,
        redelivered: bool = False,
        user_id: str | None = None,
    ) -> None:
        self.body = body
        self.message_id = message_id
        self.routing_key = routing_key
        # A retry is republished through the default exchange to the queue; others arrive
        # through the inbound exchange.
        self.exchange = "" if routing_key == "marketplace.inbound" else "marketplace.inbound"
        self.user_id = user_id
        self.headers = headers or {}
        self.redelivered = redelivered
        self.content_type = "application/json"
        self.content_encoding = None
        self.correlation_id = None
        self.timestamp = None
        self.type = None
        self.app_id = None
        self.settled: str | None = None

    async def ack(self) -> None:
        assert self.settled is None
        self.settled = "ack"

    async def reject(self, requeue: bool = False) -> None:
        assert self.settled is None
        self.settled = f"reject(requeue={requeue})"


class FakeExchange:
    def __init__(self) -> None:
        self.published: list[tuple[Any, str]] = []
        self.fail = False

    async def publish(self, message: Any, routing_key: str, **_: Any) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.published.append((message, routing_key))


class FakeChannel:
    def __init__(self) -> None:
        self.default_exchange = FakeExchange()


@pytest_asyncio.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def make_consumer(
    engine: AsyncEngine | None, failures: list[Exception] | None = None, max_attempts: int = 3
) -> tuple[Consumer, list[InboundMessage], FakeExchange, FakeExchange]:
    applied: list[InboundMessage] = []
    pending = list(failures or [])

    async def handler(message: InboundMessage) -> None:
        if pending:
            raise pending.pop(0)
        applied.append(message)

    consumer = Consumer("amqp://unused/", Topology(), handler, engine, max_attempts=max_attempts)
    channel, dead_letters = FakeChannel(), FakeExchange()
    consumer._publish_channel = channel  # type: ignore[assignment]
    consumer._dead_letters = dead_letters  # type: ignore[assignment]
    return consumer, applied, channel.default_exchange, dead_letters


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "retry_delay", lambda attempt: 0.0)


BODY = orjson.dumps({"product_id": PRODUCT, "delta": 2})


async def test_a_message_is_applied_once_per_message_id(engine: AsyncEngine) -> None:
    consumer, applied, _, dead = make_consumer(engine)
    first, again = FakeMessage(BODY), FakeMessage(BODY, redelivered=True)
    await consumer._on_message(first)  # type: ignore[arg-type]
    await consumer._on_message(again)  # type: ignore[arg-type]
    assert first.settled == again.settled == "ack"
    assert len(applied) == 1 and dead.published == []
    assert await inbox.seen(engine, "m-1")
    assert consumer.stats.processed == 1 and consumer.stats.duplicates == 1


async def test_a_rejected_message_is_dead_lettered_with_its_reason(engine: AsyncEngine) -> None:
    consumer, applied, _, dead = make_consumer(engine)
    message = FakeMessage(b"{oops", routing_key="stock.replenished")
    await consumer._on_message(message)  # type: ignore[arg-type]
    assert message.settled == "ack" and applied == []
    ((letter, routing_key),) = dead.published
    assert routing_key == "stock.replenished"
    assert "malformed JSON" in letter.headers[ERROR_HEADER]
    assert letter.message_id == "m-1" and letter.body == b"{oops"
    assert not await inbox.seen(engine, "m-1")


async def test_a_handler_rejection_is_dead_lettered_not_retried(engine: AsyncEngine) -> None:
    consumer, _, requeued, dead = make_consumer(engine, [Rejected("unknown product")])
    message = FakeMessage(BODY)
    await consumer._on_message(message)  # type: ignore[arg-type]
    assert requeued.published == [] and len(dead.published) == 1
    assert dead.published[0][0].headers[ERROR_HEADER] == "unknown product"


async def test_transient_failures_retry_then_dead_letter(engine: AsyncEngine) -> None:
    failures: list[Exception] = [TimeoutError("slow")] * 5
    consumer, applied, requeued, dead = make_consumer(engine, failures, max_attempts=3)
    message: Any = FakeMessage(BODY)
    for attempt in (1, 2):
        await consumer._on_message(message)
        assert message.settled == "ack"
        copy, routing_key = requeued.published[-1]
        assert routing_key == "marketplace.inbound"  # back to the end of the queue
        assert copy.headers[ATTEMPTS_HEADER] == attempt
        assert copy.headers[ROUTING_KEY_HEADER] == "stock.replenished"
        assert copy.message_id == "m-1"
        message = FakeMessage(copy.body, routing_key="marketplace.inbound", headers=copy.headers)
    await consumer._on_message(message)
    assert dead.published and "failed 3 times" in dead.published[0][0].headers[ERROR_HEADER]
    assert dead.published[0][1] == "stock.replenished"
    assert applied == [] and consumer.stats.retried == 2 and consumer.stats.dead_lettered == 1


async def test_a_transient_failure_that_clears_is_applied(engine: AsyncEngine) -> None:
    consumer, applied, requeued, _ = make_consumer(engine, [ConnectionError("down")])
    await consumer._on_message(FakeMessage(BODY))  # type: ignore[arg-type]
    copy, _ = requeued.published[0]
    retried = FakeMessage(copy.body, routing_key="marketplace.inbound", headers=copy.headers)
    await consumer._on_message(retried)  # type: ignore[arg-type]
    assert len(applied) == 1 and applied[0].routing_key == "stock.replenished"
    assert retried.settled == "ack" and consumer.stats.processed == 1


async def test_when_dead_lettering_fails_the_message_is_rejected(engine: AsyncEngine) -> None:
    consumer, _, _, dead = make_consumer(engine)
    dead.fail = True
    message = FakeMessage(b"[]", routing_key="nope")
    await consumer._on_message(message)  # type: ignore[arg-type]
    assert message.settled == "reject(requeue=False)"  # the queue's own DLX takes it


def test_attempts_count_our_header_and_the_brokers() -> None:
    assert attempts_of(FakeMessage(b"")) == 0  # type: ignore[arg-type]
    assert attempts_of(FakeMessage(b"", redelivered=True)) == 1  # type: ignore[arg-type]
    quorum = FakeMessage(b"", headers={"x-delivery-count": 2, ATTEMPTS_HEADER: 1}, redelivered=True)
    assert attempts_of(quorum) == 3  # type: ignore[arg-type]
    junk = FakeMessage(b"", headers={ATTEMPTS_HEADER: "many", "x-delivery-count": None})
    assert attempts_of(junk) == 0  # type: ignore[arg-type]


def test_retry_delays_grow_and_are_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 10)]
    assert delays == sorted(delays) and delays[0] > 0 and max(delays) <= 10
