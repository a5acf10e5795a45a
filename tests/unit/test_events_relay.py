"""The relay's rounds over a real outbox (SQLite file) and a fake broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.config import Settings
from marketplace.events import outbox
from marketplace.events.envelope import Envelope
from marketplace.events.publisher import PublishFailed
from marketplace.events.relay import OutboxRelay, RoundFailed
from marketplace.events.topology import Topology, archive_arguments
from marketplace.store.engine import create_engine
from marketplace.store.rows import utcnow
from marketplace.store.tables import metadata
from marketplace.store.tables import outbox as outbox_table

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class FakePublisher:
    """Confirms everything except what ``fail`` names (once each); records what it got."""

    def __init__(self) -> None:
        self.connected = True
        self.refuse_connects = 0
        self.fail: set[str] = set()
        self.log: list[Envelope] = []

    async def connect(self) -> None:
        if self.refuse_connects:
            self.refuse_connects -= 1
            self.connected = False
            raise ConnectionRefusedError("no broker")
        self.connected = True

    async def publish(self, envelope: Envelope) -> None:
        if envelope.id in self.fail:
            self.fail.discard(envelope.id)
            raise PublishFailed(f"returned: {envelope.id}")
        await asyncio.sleep(0)
        self.log.append(envelope)

    async def close(self) -> None:
        self.connected = False


@pytest_asyncio.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def add_events(engine: AsyncEngine, events: list[tuple[str, int]]) -> list[str]:
    rows = [
        {
            "id": f"evt_{subject}_{sequence}",
            "type": "stock.changed",
            "source": "test",
            "subject": subject,
            "sequence": sequence,
            "time": T0,
            "data": {"n": sequence},
        }
        for subject, sequence in events
    ]
    async with engine.begin() as conn:
        await conn.execute(outbox_table.insert(), rows)
    return [str(row["id"]) for row in rows]


def make_relay(engine: AsyncEngine, **options: float) -> tuple[OutboxRelay, FakePublisher]:
    relay = OutboxRelay(engine, "amqp://unused/", Topology(), **options)  # type: ignore[arg-type]
    fake = FakePublisher()
    relay.publisher = fake  # type: ignore[assignment]
    return relay, fake


def in_subject_order(log: list[Envelope]) -> bool:
    seen: set[str] = set()
    last: dict[str, int] = {}
    for envelope in log:
        if envelope.id in seen:
            continue
        seen.add(envelope.id)
        if envelope.sequence <= last.get(envelope.subject, -1):
            return False
        last[envelope.subject] = envelope.sequence
    return True


async def test_a_round_publishes_and_marks_everything(engine: AsyncEngine) -> None:
    ids = await add_events(engine, [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)])
    relay, fake = make_relay(engine)
    assert await outbox.lag(engine) == 6
    assert await relay.run_once() == 6
    assert sorted(e.id for e in fake.log) == sorted(ids)
    assert in_subject_order(fake.log)
    stats = await relay.snapshot()
    assert stats["lag"] == 0 and stats["published"] == 6 and stats["failed"] == 0
    assert await relay.run_once() == 0  # nothing left, nothing published again
    assert len(fake.log) == 6


async def test_batches_follow_the_outbox_position(engine: AsyncEngine) -> None:
    await add_events(engine, [("a", n) for n in range(1, 8)])
    relay, fake = make_relay(engine, batch_size=3)
    assert [await relay.run_once() for _ in range(4)] == [3, 3, 1, 0]
    assert [e.sequence for e in fake.log] == list(range(1, 8))


async def test_a_failed_event_holds_back_its_subject_until_the_next_round(
    engine: AsyncEngine,
) -> None:
    await add_events(engine, [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)])
    relay, fake = make_relay(engine)
    fake.fail = {"evt_a_2"}
    with pytest.raises(RoundFailed, match="1 of 5 events not confirmed"):
        await relay.run_once()
    assert sorted(e.id for e in fake.log) == ["evt_a_1", "evt_b_1", "evt_b_2"]
    assert await outbox.lag(engine) == 2  # a:2 and a:3 wait
    assert await relay.run_once() == 2
    assert [e.id for e in fake.log][-2:] == ["evt_a_2", "evt_a_3"]
    assert in_subject_order(fake.log)
    assert relay.stats.failed == 1 and relay.stats.published == 5


async def test_no_round_while_disconnected(engine: AsyncEngine) -> None:
    await add_events(engine, [("a", 1)])
    relay, fake = make_relay(engine)
    fake.connected = False
    with pytest.raises(PublishFailed):
        await relay.run_once()
    assert fake.log == [] and await outbox.lag(engine) == 1


async def test_a_crash_between_confirm_and_mark_publishes_again(engine: AsyncEngine) -> None:
    ids = await add_events(engine, [("a", 1), ("a", 2), ("b", 1)])
    relay, fake = make_relay(engine, mark_delay_s=5.0)
    round_ = asyncio.ensure_future(relay.run_once())
    for _ in range(500):
        if len(fake.log) == 3:
            break
        await asyncio.sleep(0.01)
    round_.cancel()  # the relay dies after the confirms, before marking
    with pytest.raises(asyncio.CancelledError):
        await round_
    assert await outbox.lag(engine) == 3

    restarted, again = make_relay(engine)
    assert await restarted.run_once() == 3
    assert sorted(e.id for e in again.log) == sorted(ids)  # duplicates, with the same ids
    assert in_subject_order(fake.log + again.log)


async def test_an_invalid_row_holds_back_only_its_subject(engine: AsyncEngine) -> None:
    await add_events(engine, [("a", -1), ("a", 2), ("b", 1)])
    relay, fake = make_relay(engine)
    assert await relay.run_once() == 1
    assert [e.id for e in fake.log] == ["evt_b_1"]
    assert relay.stats.failed == 1 and await outbox.lag(engine) == 2


async def test_the_loop_rides_out_an_absent_broker(engine: AsyncEngine) -> None:
    await add_events(engine, [("a", 1), ("a", 2)])
    relay, fake = make_relay(engine, poll_interval_s=0.01)
    fake.refuse_connects = 3
    fake.connected = False
    task = asyncio.ensure_future(relay.run())
    try:
        for _ in range(500):
            if await outbox.lag(engine) == 0:
                break
            await asyncio.sleep(0.01)
        assert await outbox.lag(engine) == 0
        assert not task.done()
        assert relay.stats.last_error is not None and "no broker" in relay.stats.last_error
        await add_events(engine, [("a", 3)])  # the loop keeps polling
        for _ in range(200):
            if await outbox.lag(engine) == 0:
                break
            await asyncio.sleep(0.01)
        assert [e.sequence for e in fake.log] == [1, 2, 3]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_archive_is_on_by_default_bounded_and_a_setting_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MARKETPLACE_EVENTS_EXCHANGE", "MARKETPLACE_EVENT_ARCHIVE_MAX_LENGTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MARKETPLACE_EVENT_ARCHIVE", raising=False)
    topology = Topology.from_settings(Settings())
    assert topology.archive and topology.archive_queue == "marketplace.events.archive"
    assert archive_arguments(topology) == {"x-max-length": 100_000, "x-overflow": "drop-head"}
    monkeypatch.setenv("MARKETPLACE_EVENT_ARCHIVE", "false")
    monkeypatch.setenv("MARKETPLACE_EVENT_ARCHIVE_MAX_LENGTH", "500")
    topology = Topology.from_settings(Settings())
    assert not topology.archive and topology.archive_max_length == 500


async def test_published_rows_past_the_retention_are_pruned_never_unpublished_ones(
    engine: AsyncEngine,
) -> None:
    old = await add_events(engine, [("a", 1), ("a", 2), ("b", 1)])
    relay, _ = make_relay(engine, retention_s=60, prune_interval_s=0)
    assert await relay.run_once() == 3
    # published an hour ago; then three more, of which one is published now, two wait
    async with engine.begin() as conn:
        await conn.execute(outbox_table.update().values(published_at=utcnow() - timedelta(hours=1)))
    recent = await add_events(engine, [("a", 3), ("c", 1), ("c", 2)])
    await outbox.mark_published(engine, recent[:1])
    assert await relay.prune_now_and_then() == 3
    async with engine.connect() as conn:
        left = {row.id: row.published_at for row in await conn.execute(outbox_table.select())}
    assert set(left) == set(recent) and not set(old) & set(left)
    assert [left[i] is None for i in recent] == [False, True, True]
    assert (await relay.snapshot())["pruned"] == 3
    # once per interval: a relay with a long interval leaves the next prune for later
    patient, _ = make_relay(engine, retention_s=0.001, prune_interval_s=3600)
    assert await patient.prune_now_and_then() == 0
