"""Token revocation: a gateway replica's view of the revoked token versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from serve_app.revocations import CLOCK_MARGIN, Revocations

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=900)


class FakeStore:
    """Revocations as a store would answer them, and the ``since`` of every poll."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, datetime]] = []
        self.asked: list[datetime] = []
        self.fail = False

    async def since(self, since: datetime) -> list[tuple[str, int, datetime]]:
        self.asked.append(since)
        if self.fail:
            raise ConnectionError("the database went away")
        return [row for row in self.rows if row[2] >= since]


def test_only_older_versions_are_refused() -> None:
    revocations = Revocations(FakeStore().since, token_ttl_s=900, poll_s=1)
    assert not revocations.refuses("usr_1", 0)
    revocations.note("usr_1", 2, NOW)
    assert revocations.refuses("usr_1", 0) and revocations.refuses("usr_1", 1)
    assert not revocations.refuses("usr_1", 2) and not revocations.refuses("usr_1", 3)
    assert not revocations.refuses("usr_2", 0)
    revocations.note("usr_1", 1, NOW)  # a late, older answer never undoes a revocation
    assert revocations.refuses("usr_1", 1)


async def test_polls_read_one_token_lifetime_back_then_only_what_is_new() -> None:
    store = FakeStore()
    store.rows = [("usr_old", 1, NOW - TTL - 2 * CLOCK_MARGIN), ("usr_1", 1, NOW - TTL / 2)]
    revocations = Revocations(store.since, token_ttl_s=900, poll_s=1)
    await revocations.poll(NOW)
    assert store.asked == [NOW - TTL - CLOCK_MARGIN]
    assert revocations.refuses("usr_1", 0)
    assert not revocations.refuses("usr_old", 0)  # its older tokens have all expired
    later = NOW + timedelta(seconds=1)
    # stamped before the last poll by a clock behind this one, committed only now: still seen
    store.rows.append(("usr_2", 4, NOW - timedelta(seconds=5)))
    await revocations.poll(later)
    assert store.asked[-1] == NOW - CLOCK_MARGIN
    assert revocations.refuses("usr_2", 3)


async def test_revocations_are_forgotten_once_every_token_they_refuse_expired() -> None:
    revocations = Revocations(FakeStore().since, token_ttl_s=900, poll_s=1)
    revocations.note("usr_1", 1, NOW)
    await revocations.poll(NOW + TTL + CLOCK_MARGIN)
    assert revocations.refuses("usr_1", 0)
    await revocations.poll(NOW + TTL + CLOCK_MARGIN + timedelta(seconds=1))
    assert not revocations.refuses("usr_1", 0)


async def test_ready_loads_once_then_polls_in_the_background_through_failures() -> None:
    store = FakeStore()
    revocations = Revocations(store.since, token_ttl_s=900, poll_s=0.01)
    store.fail = True
    with pytest.raises(ConnectionError):  # a replica that cannot load them does not guess
        await revocations.ready()
    store.fail = False
    await asyncio.gather(revocations.ready(), revocations.ready())
    try:
        assert len(store.asked) == 2  # the failed first poll, then one for both callers
        store.fail = True
        await asyncio.sleep(0.05)
        store.fail = False
        store.rows.append(("usr_1", 1, datetime.now(UTC)))
        for _ in range(100):
            if revocations.refuses("usr_1", 0):
                break
            await asyncio.sleep(0.01)
        assert revocations.refuses("usr_1", 0)
    finally:
        await revocations.close()
