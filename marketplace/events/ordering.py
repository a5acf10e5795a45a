"""Per-aggregate ordering (invariant I5), kept apart from any broker so it can be tested alone.

A batch of outbox rows becomes one chain per subject, in sequence order. Chains are published
concurrently; inside a chain an event is published only after the previous one was confirmed,
and a failure holds back the rest of its chain until the next round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from marketplace.events.envelope import Envelope


def chains(envelopes: Iterable[Envelope]) -> list[list[Envelope]]:
    """The events grouped by subject, each group in sequence order; groups in order of their
    first event (so the oldest aggregate goes first)."""
    grouped: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        grouped.setdefault(envelope.subject, []).append(envelope)
    for chain in grouped.values():
        chain.sort(key=lambda envelope: envelope.sequence)
    return list(grouped.values())


@dataclass
class RoundResult:
    """What one publishing round achieved."""

    confirmed: list[Envelope] = field(default_factory=list)
    failed: list[tuple[Envelope, BaseException]] = field(default_factory=list)
    held_back: int = 0  # events behind a failure of their own subject


async def publish_in_order(
    groups: list[list[Envelope]],
    publish: Callable[[Envelope], Awaitable[object]],
    *,
    concurrency: int = 256,
) -> RoundResult:
    """Publish every chain, chains concurrently (at most ``concurrency`` at once), each chain
    one confirmed event after another, stopping a chain at its first failure."""
    result = RoundResult()
    gate = asyncio.Semaphore(concurrency)

    async def run(chain: list[Envelope]) -> None:
        async with gate:
            for done, envelope in enumerate(chain):
                try:
                    await publish(envelope)
                except Exception as exc:
                    result.failed.append((envelope, exc))
                    result.held_back += len(chain) - done - 1
                    return
                result.confirmed.append(envelope)

    await asyncio.gather(*(run(chain) for chain in groups))
    return result
