"""An inbound restock whose processing fails between its effect and the inbox: applied once.

The consumer (fake deliveries, as in ``test_events_inbound``) applies ``stock.replenished``
through a real ``InventoryPartition`` in this process, on a real SQLite store. The effect is
idempotent by message id in its own transaction (the stock movement's request id is
``inbound:<message_id>``, stored with the stock row), so the inbox written after it is only a
shortcut; these tests fail it at each point in between.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.inventory import InventoryPartition
from marketplace.config import Durability, Settings
from marketplace.domain.inventory import StockItem
from marketplace.events import consumer as consumer_module
from marketplace.events import inbox
from marketplace.events.consumer import ATTEMPTS_HEADER, Consumer
from marketplace.events.messages import InboundMessage, StockReplenished, request_id_for
from marketplace.events.topology import Topology
from marketplace.store import inventory as store
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from tests.unit.factories import LosingWriter
from tests.unit.test_events_inbound import FakeChannel, FakeExchange, FakeMessage

pytestmark = pytest.mark.unit

PRODUCT = "prd_" + "c" * 32


async def setup(tmp_path: Path) -> tuple[AsyncEngine, LosingWriter, InventoryPartition, Consumer]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    await migrate.upgrade_async(url)
    settings = Settings(database_url=url, durability=Durability.SYNC).model_dump()
    engine = create_engine(url)
    writer = LosingWriter(engine, Durability.SYNC)
    partition = InventoryPartition(settings, writer=writer)
    await partition.adjust_stock(PRODUCT, 10, "seed")

    async def replenish(message: InboundMessage) -> None:
        # What InboundConsumer.apply does for a restock, minus the Ray call.
        assert isinstance(message.command, StockReplenished)
        command = message.command
        request_id = request_id_for(message.message_id)
        await partition.adjust_stock(command.product_id, command.delta, request_id)

    consumer = Consumer("amqp://unused/", Topology(), replenish, engine)
    consumer._publish_channel = FakeChannel()  # type: ignore[assignment]
    consumer._dead_letters = FakeExchange()  # type: ignore[assignment]
    return engine, writer, partition, consumer


def restock(message_id: str, delta: int, attempt: int = 0) -> FakeMessage:
    headers = {ATTEMPTS_HEADER: attempt} if attempt else {}
    body = orjson.dumps({"product_id": PRODUCT, "delta": delta})
    return FakeMessage(body, message_id=message_id, headers=headers, redelivered=bool(attempt))


async def stored(engine: AsyncEngine) -> tuple[StockItem, int]:
    async with engine.connect() as conn:
        items, _ = await store.load_all(conn)
        totals = await store.movement_totals(conn)
    [item] = [item for item in items if item.product_id == PRODUCT]
    return item, totals[PRODUCT]


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "retry_delay", lambda attempt: 0.0)


async def check_applied_once(engine: AsyncEngine, partition: InventoryPartition) -> None:
    item, moved = await stored(engine)
    assert item.stocked == moved == 10 + 2 + 3  # each message once (I1's stock arithmetic)
    assert (await partition.snapshot())["stock"][PRODUCT] == item  # memory equals the store
    assert await inbox.seen(engine, "m-1") and await inbox.seen(engine, "m-2")


async def test_a_restock_whose_commit_answer_was_lost_is_applied_once(tmp_path: Path) -> None:
    engine, writer, partition, consumer = await setup(tmp_path)
    first = restock("m-1", 2)
    writer.lose = 1  # the effect commits; the consumer hears a 503 and retries the message
    await consumer._on_message(first)  # type: ignore[arg-type]
    assert first.settled == "ack" and consumer.stats.retried == 1
    assert not await inbox.seen(engine, "m-1")
    await consumer._on_message(restock("m-1", 2, attempt=1))  # type: ignore[arg-type]
    await consumer._on_message(restock("m-2", 3))  # type: ignore[arg-type]
    await check_applied_once(engine, partition)
    await writer.close()


async def test_a_restock_whose_inbox_write_failed_is_applied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, writer, partition, consumer = await setup(tmp_path)
    record = inbox.record
    failures = [ConnectionResetError("connection reset")]

    async def failing_record(engine: AsyncEngine, message_id: str, routing_key: str) -> bool:
        if failures:
            raise failures.pop()
        return await record(engine, message_id, routing_key)

    monkeypatch.setattr(inbox, "record", failing_record)
    await consumer._on_message(restock("m-1", 2))  # type: ignore[arg-type]
    assert consumer.stats.retried == 1 and not await inbox.seen(engine, "m-1")
    await consumer._on_message(restock("m-1", 2, attempt=1))  # type: ignore[arg-type]
    await consumer._on_message(restock("m-2", 3))  # type: ignore[arg-type]
    await check_applied_once(engine, partition)
    await writer.close()
