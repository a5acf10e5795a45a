"""An actor's start-up load meets the database down: it retries, and starts clean each time.

``ActorBase`` runs in this process (no Ray) on a real SQLite writer; the loads fail with the
error SQLAlchemy raises for a refused connection, which ``store.failures`` counts as transient.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa
from tenacity import wait_none

import actors.base
from actors.base import ActorBase
from marketplace.config import Durability, Settings
from marketplace.domain.errors import TransientFailure
from marketplace.store.engine import create_engine
from marketplace.store.writer import Writer

pytestmark = pytest.mark.unit

ROWS = {"a": 1, "b": 2, "c": 3}


def refused() -> sa.OperationalError:
    return sa.OperationalError("SELECT", None, ConnectionRefusedError("connection refused"))


class FlakyLoader(ActorBase):
    """Loads ``ROWS`` one by one; its first ``failures`` attempts fail after the second row."""

    LOAD_RETRY_WAIT = wait_none()

    def __init__(self, settings: dict[str, Any], writer: Writer, failures: int) -> None:
        self.rows: dict[str, int] = {}
        self.seen: list[str] = []
        self.attempts = 0
        self.failures = failures
        self.last_attempt = asyncio.Event()
        self.go_on = asyncio.Event()
        super().__init__(settings, writer=writer)

    async def load(self) -> None:
        self.attempts += 1
        for count, (key, value) in enumerate(ROWS.items()):
            if count == 2 and self.attempts <= self.failures:
                raise refused()
            self.rows[key] = value
            self.seen.append(key)
        if self.attempts > self.failures:
            self.last_attempt.set()
            await self.go_on.wait()


async def ready_when_loaded(actor: ActorBase) -> dict[str, Any]:
    """``actor.ready()``, retried on 503 as a client would."""
    for _ in range(1000):
        try:
            return await actor.ready()
        except TransientFailure:
            await asyncio.sleep(0)
    raise AssertionError("the actor never became ready")


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    return Writer(create_engine(f"sqlite:///{tmp_path / 'store.db'}"), Durability.SYNC)


SETTINGS = Settings(durability=Durability.SYNC).model_dump()


async def test_a_load_that_meets_the_database_down_is_retried_from_a_clean_state(
    writer: Writer,
) -> None:
    actor = FlakyLoader(SETTINGS, writer, failures=3)
    for _ in range(1000):  # the failed attempts go by without waiting (wait_none)
        if actor.last_attempt.is_set():
            break
        await asyncio.sleep(0)
    assert actor.last_attempt.is_set(), f"loading gave up after {actor.attempts} attempt(s)"
    # Loading is still waiting for the database: callers are told to retry, not kept waiting.
    with pytest.raises(TransientFailure):
        await actor.ready()
    actor.go_on.set()
    answer = await ready_when_loaded(actor)
    assert answer["kind"] == "FlakyLoader"
    assert actor.attempts == 4
    # Each row once: the half-loaded attempts left nothing behind.
    assert actor.rows == ROWS
    assert actor.seen == list(ROWS)
    await writer.close()


class BrokenLoader(ActorBase):
    def __init__(self, settings: dict[str, Any], writer: Writer) -> None:
        self.attempts = 0
        super().__init__(settings, writer=writer)

    async def load(self) -> None:
        self.attempts += 1
        raise sa.ProgrammingError("SELECT", None, ValueError("no such table"))


async def test_a_load_that_fails_for_good_ends_a_ray_actor_so_ray_restarts_it(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[bool] = []
    monkeypatch.setattr(actors.base, "_in_ray_actor", lambda: True)
    monkeypatch.setattr(actors.base, "_exit_process", lambda: exits.append(True))
    actor = BrokenLoader(SETTINGS, writer)
    with pytest.raises(sa.ProgrammingError):
        await actor.ready()
    assert actor.attempts == 1  # not retried: it would fail the same way
    assert exits == [True]
    await writer.close()
