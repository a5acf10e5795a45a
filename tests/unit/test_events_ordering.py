"""Per-aggregate ordering (I5): chains per subject, and never n+1 before n is confirmed."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from marketplace.events.envelope import Envelope
from marketplace.events.ordering import chains, publish_in_order

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def env(subject: str, sequence: int) -> Envelope:
    return Envelope(
        id=f"evt_{subject}_{sequence}",
        type="stock.changed",
        source="test",
        subject=subject,
        sequence=sequence,
        time=T0,
        data={},
    )


def test_chains_group_by_subject_in_sequence_order() -> None:
    batch = [env("a", 1), env("b", 4), env("a", 3), env("c", 1), env("a", 2), env("b", 5)]
    groups = chains(batch)
    assert [[(e.subject, e.sequence) for e in chain] for chain in groups] == [
        [("a", 1), ("a", 2), ("a", 3)],
        [("b", 4), ("b", 5)],
        [("c", 1)],
    ]
    assert chains([]) == []


async def test_a_subject_is_published_one_confirmed_event_at_a_time() -> None:
    rng = random.Random(7)
    batch = [env(f"s{rng.randrange(5)}", n) for n in range(60)]
    in_flight: dict[str, int] = {}
    order: list[Envelope] = []

    async def publish(envelope: Envelope) -> None:
        assert envelope.subject not in in_flight, "two events of one subject in flight"
        in_flight[envelope.subject] = envelope.sequence
        await asyncio.sleep(rng.random() / 500)
        del in_flight[envelope.subject]
        order.append(envelope)

    result = await publish_in_order(chains(batch), publish)
    assert not result.failed and result.held_back == 0
    assert sorted(e.id for e in result.confirmed) == sorted(e.id for e in batch)
    for subject in {e.subject for e in batch}:
        sequences = [e.sequence for e in order if e.subject == subject]
        assert sequences == sorted(sequences)


async def test_subjects_are_published_concurrently() -> None:
    started = asyncio.Event()
    waiting = 0

    async def publish(envelope: Envelope) -> None:
        nonlocal waiting
        waiting += 1
        if waiting == 3:
            started.set()
        await asyncio.wait_for(started.wait(), 1)  # all three subjects at once, or time out

    result = await publish_in_order(chains([env("a", 1), env("b", 1), env("c", 1)]), publish)
    assert len(result.confirmed) == 3


async def test_a_failure_holds_back_the_rest_of_its_subject_only() -> None:
    batch = [env("a", 1), env("a", 2), env("a", 3), env("a", 4), env("b", 1), env("b", 2)]
    attempted: list[str] = []

    async def publish(envelope: Envelope) -> None:
        attempted.append(envelope.id)
        if envelope.id == "evt_a_2":
            raise ConnectionError("nacked")

    result = await publish_in_order(chains(batch), publish)
    assert {e.id for e in result.confirmed} == {"evt_a_1", "evt_b_1", "evt_b_2"}
    assert [(e.id, type(exc)) for e, exc in result.failed] == [("evt_a_2", ConnectionError)]
    assert result.held_back == 2
    assert "evt_a_3" not in attempted and "evt_a_4" not in attempted


async def test_concurrency_is_bounded() -> None:
    active = peak = 0

    async def publish(envelope: Envelope) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1

    result = await publish_in_order(
        chains([env(f"s{i}", 1) for i in range(50)]), publish, concurrency=4
    )
    assert len(result.confirmed) == 50 and peak == 4
