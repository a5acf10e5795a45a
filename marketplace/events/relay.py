"""The outbox relay: publishes committed events to ``marketplace.events``, at least once and
in order per aggregate (invariants I4 and I5).

Each round reads the oldest unpublished outbox rows, publishes them (one chain per subject,
see ``ordering``), and marks the confirmed ones published. A crash between the confirms and the
mark publishes those events again on the next round: duplicates carry the same event id, and
consumers drop them by id. Connection failures, a broker that is down or absent at start-up,
and failed rounds are retried with exponential backoff, forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_exponential_jitter,
)

from marketplace.config import Settings
from marketplace.events import outbox
from marketplace.events.envelope import Envelope
from marketplace.events.ordering import chains, publish_in_order
from marketplace.events.publisher import Publisher, PublishFailed
from marketplace.events.topology import Topology
from marketplace.store.rows import utcnow

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0


class RoundFailed(Exception):
    """Some events of a round were not confirmed (they are retried after a backoff)."""


@dataclass
class RelayStats:
    """Counters since the relay started."""

    published: int = 0
    failed: int = 0
    rounds: int = 0
    pruned: int = 0
    last_error: str | None = None


class OutboxRelay:
    """Moves events from the outbox to the broker; ``run`` loops until cancelled."""

    def __init__(
        self,
        engine: AsyncEngine,
        url: str,
        topology: Topology,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.1,
        mark_delay_s: float = 0.0,
        retention_s: float = 7 * 86_400.0,
        prune_interval_s: float = 60.0,
    ) -> None:
        self.engine = engine
        self.publisher = Publisher(url, topology)
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.mark_delay_s = mark_delay_s
        self.retention = timedelta(seconds=retention_s)
        self.prune_interval_s = prune_interval_s
        self._pruned_at = time.monotonic()
        self.stats = RelayStats()

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> OutboxRelay:
        """A relay configured by ``settings`` (which must name a broker)."""
        if not settings.amqp_url:
            raise ValueError("the relay needs MARKETPLACE_AMQP_URL")
        return cls(
            engine,
            settings.amqp_url,
            Topology.from_settings(settings),
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            mark_delay_s=settings.relay_mark_delay_s,
            retention_s=settings.outbox_retention_s,
            prune_interval_s=settings.retention_interval_s,
        )

    @property
    def connected(self) -> bool:
        """Whether the relay can publish now."""
        return self.publisher.connected

    async def run(self) -> None:
        """Publish forever: never returns except by cancellation, never raises otherwise."""
        try:
            while True:
                try:
                    published = await self._round_with_retries()
                except asyncio.CancelledError:
                    raise
                except Exception:  # defensive: the retries below never give up
                    log.exception("relay round failed unexpectedly")
                    published = 0
                    await asyncio.sleep(MAX_BACKOFF_S)
                if published < self.batch_size:
                    await self.prune_now_and_then()
                    await asyncio.sleep(self.poll_interval_s)
        finally:
            await self.publisher.close()

    async def _round_with_retries(self) -> int:
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(initial=0.05, max=MAX_BACKOFF_S, jitter=0.1),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._note_failure,
            reraise=True,
        ):
            with attempt:
                await self.publisher.connect()
                return await self.run_once()
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats.last_error = repr(exc)
        level = logging.WARNING if state.attempt_number % 50 in (1, 10) else logging.DEBUG
        log.log(level, "relay round failed (attempt %d): %r", state.attempt_number, exc)

    async def run_once(self) -> int:
        """One round: publish up to a batch; returns how many were confirmed and marked.

        Raises ``RoundFailed`` (after marking what was confirmed) when some were not.
        """
        if not self.publisher.connected:
            raise PublishFailed("not connected to the broker")
        async with self.engine.connect() as conn:
            rows = await outbox.fetch_unpublished(conn, self.batch_size)
        if not rows:
            return 0
        envelopes, poisoned = _envelopes(rows)
        result = await publish_in_order(chains(envelopes), self.publisher.publish)
        if self.mark_delay_s:
            await asyncio.sleep(self.mark_delay_s)  # fault injection: widen the crash window
        confirmed = [envelope.id for envelope in result.confirmed]
        await self._mark(confirmed)
        self.stats.rounds += 1
        self.stats.published += len(confirmed)
        self.stats.failed += len(result.failed) + poisoned
        if result.failed:
            _, exc = result.failed[0]
            raise RoundFailed(
                f"{len(result.failed)} of {len(rows)} events not confirmed "
                f"({result.held_back} held back behind them); first: {exc}"
            ) from exc
        return len(confirmed)

    async def prune_now_and_then(self) -> int:
        """At most once per ``prune_interval_s``, delete the rows published more than the
        retention ago (only while the outbox is caught up: publishing comes first); how many.
        A failure is logged and left for the next time."""
        now = time.monotonic()
        if now - self._pruned_at < self.prune_interval_s:
            return 0
        self._pruned_at = now
        try:
            pruned = await outbox.prune_published(self.engine, utcnow() - self.retention)
        except Exception as exc:
            log.warning("pruning published outbox rows failed: %r", exc)
            return 0
        self.stats.pruned += pruned
        return pruned

    async def _mark(self, event_ids: list[str]) -> None:
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_attempt(5),
            reraise=True,
        ):
            with attempt:
                await outbox.mark_published(self.engine, event_ids)

    async def snapshot(self) -> dict[str, Any]:
        """``{lag, published, failed, connected}`` plus a few more counters."""
        return {
            "lag": await outbox.lag(self.engine),
            "published": self.stats.published,
            "failed": self.stats.failed,
            "connected": self.connected,
            "rounds": self.stats.rounds,
            "pruned": self.stats.pruned,
            "last_error": self.stats.last_error,
        }


def _envelopes(rows: list[dict[str, Any]]) -> tuple[list[Envelope], int]:
    """Envelopes of the rows; a row that is no valid envelope holds back its whole subject
    (publishing its successors would break the subject's order)."""
    envelopes: list[Envelope] = []
    blocked: set[str] = set()
    for row in rows:
        if row["subject"] in blocked:
            continue
        try:
            envelopes.append(Envelope.from_row(row))
        except ValidationError:
            log.error("outbox row %s is no valid envelope; holding back %s", row["id"], row)
            blocked.add(row["subject"])
    if blocked:
        envelopes = [envelope for envelope in envelopes if envelope.subject not in blocked]
    return envelopes, len(blocked)
