"""EventRelay: the outbox -> RabbitMQ relay as an actor (see ``marketplace.events.relay``).

One per marketplace, started by the directory only when a broker is configured. Without one it
stays idle and events wait in the outbox; ``stats`` still reports the lag.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.base import ActorBase
from actors.protocols import EventRelayApi
from marketplace.events import outbox
from marketplace.events.relay import OutboxRelay

log = logging.getLogger(__name__)


class EventRelay(ActorBase):
    """Publishes the outbox to ``marketplace.events`` in a background loop."""

    SOURCE = "marketplace/relay"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.relay: OutboxRelay | None = None
        self._loop_task: asyncio.Task[None] | None = None
        super().__init__(settings, index, count)

    async def started(self) -> None:
        if self.engine is None or not self.settings.amqp_url:
            log.info("no broker configured (or no store): the relay stays idle")
            return
        self.relay = OutboxRelay.from_settings(self.engine, self.settings)
        self._loop_task = asyncio.get_running_loop().create_task(self.relay.run())
        self._loop_task.add_done_callback(_report_end)

    async def stats(self) -> dict[str, Any]:
        """``{lag, published, failed, connected}`` (plus ``rounds`` and ``last_error``)."""
        await self.loaded()
        if self.relay is not None:
            return await self.relay.snapshot()
        lag = 0 if self.engine is None else await outbox.lag(self.engine)
        return {
            "lag": lag,
            "published": 0,
            "failed": 0,
            "connected": False,
            "rounds": 0,
            "pruned": 0,
            "last_error": None,
        }

    async def publish_gauges(self) -> None:
        """The relay's ``stats`` as the ``marketplace_event_relay`` gauges."""
        self.metrics.relay(await self.stats())


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the relay loop ended", exc_info=task.exception())


_ANSWERS: type[EventRelayApi] = EventRelay  # mypy checks the class against its protocol
EventRelayActor = ray.remote(EventRelay)
