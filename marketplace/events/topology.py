"""The RabbitMQ topology of DESIGN.md section 7, declared idempotently.

``marketplace.events`` (topic, durable): what the relay publishes, routing key = event type.
With the archive on (the default), the queue ``marketplace.events.archive`` is bound to it with
``#``: every event routes somewhere, so an event type nobody else binds is not returned to the
relay's mandatory publish (which would count it as a failure and hold the relay's lag up). The
archive is bounded (``x-max-length``, oldest dropped first). With it off, a type that no queue
binds is returned, as it always was: the way to notice missing bindings.
``marketplace.inbound`` (topic, durable) -> queue ``marketplace.inbound`` (bound with ``#``; a
quorum queue where the broker supports it) whose dead letters go to the exchange
``marketplace.inbound.dlx`` and on to the queue ``marketplace.inbound.dlq``.

Every name comes from settings, with the contract's names as defaults, so tests can run side by
side on one broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aio_pika.exceptions import AMQPChannelError, ChannelClosed

from marketplace.config import Settings

log = logging.getLogger(__name__)

# Quorum queues count deliveries; past this many the broker dead-letters a message itself. The
# consumer gives up long before (``inbound_max_attempts``); this catches a message that kills
# its consumer every time. A constant: redeclaring a queue with other arguments is refused.
DELIVERY_LIMIT = 20
# How many events the archive keeps by default (Settings.event_archive_max_length): the newest,
# the broker drops the oldest beyond it. About 100 MB of envelopes at 1 KB each.
ARCHIVE_MAX_LENGTH = 100_000


@dataclass(frozen=True)
class Topology:
    """Exchange and queue names."""

    events_exchange: str = "marketplace.events"
    inbound_exchange: str = "marketplace.inbound"
    inbound_queue: str = "marketplace.inbound"
    archive: bool = True
    archive_max_length: int = ARCHIVE_MAX_LENGTH

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        """The names the settings ask for."""
        return cls(
            settings.events_exchange,
            settings.inbound_exchange,
            settings.inbound_queue,
            archive=settings.event_archive,
            archive_max_length=settings.event_archive_max_length,
        )

    @property
    def archive_queue(self) -> str:
        """The catch-all queue of every event (``marketplace.events.archive``)."""
        return f"{self.events_exchange}.archive"

    @property
    def dead_letter_exchange(self) -> str:
        """Where rejected inbound messages go (``marketplace.inbound.dlx``)."""
        return f"{self.inbound_queue}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        """Where they stay (``marketplace.inbound.dlq``)."""
        return f"{self.inbound_queue}.dlq"


def queue_arguments(topology: Topology, *, quorum: bool) -> dict[str, Any]:
    """The inbound queue's arguments."""
    arguments: dict[str, Any] = {"x-dead-letter-exchange": topology.dead_letter_exchange}
    if quorum:
        arguments |= {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
    return arguments


async def declare_events_exchange(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """``marketplace.events``: topic, durable."""
    return await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


def archive_arguments(topology: Topology) -> dict[str, Any]:
    """The archive queue's arguments: bounded, dropping its oldest events first."""
    return {"x-max-length": topology.archive_max_length, "x-overflow": "drop-head"}


async def declare_events_archive(connection: AbstractConnection, topology: Topology) -> None:
    """Declare the archive queue and bind it to the events exchange with ``#`` (nothing when
    the archive is off). The exchange must exist already.

    Runs on throw-away channels: a queue that exists with other arguments (an earlier bound)
    refuses the declaration and closes its channel; it is then used as it is, with a warning,
    rather than keeping the relay from publishing.
    """
    if not topology.archive:
        return
    name = topology.archive_queue
    try:
        async with connection.channel(publisher_confirms=False) as channel:
            await channel.declare_queue(name, durable=True, arguments=archive_arguments(topology))
    except (AMQPChannelError, ChannelClosed) as exc:
        log.warning("queue %s exists with other arguments (%s); using it as it is", name, exc)
    async with connection.channel(publisher_confirms=False) as channel:
        queue = await channel.declare_queue(name, passive=True)
        await queue.bind(topology.events_exchange, "#")


async def declare_inbound(connection: AbstractConnection, topology: Topology) -> dict[str, Any]:
    """Declare the inbound side (exchanges, the queue, its dead-letter queue, bindings).

    Runs on throw-away channels, since a refused declaration closes its channel. Returns the
    queue arguments that the queue was found or made with, for consumers to redeclare it with
    the same ones (``{"passive": True}`` when it exists with arguments of its own).
    """
    async with connection.channel(publisher_confirms=False) as channel:
        await declare_events_exchange(channel, topology)
        for name in (topology.inbound_exchange, topology.dead_letter_exchange):
            await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    dlq = await _declare_queue(
        connection, topology.dead_letter_queue, {"x-queue-type": "quorum"}, {}
    )
    used = await _declare_queue(
        connection,
        topology.inbound_queue,
        queue_arguments(topology, quorum=True),
        queue_arguments(topology, quorum=False),
    )
    async with connection.channel(publisher_confirms=False) as channel:
        dead_letters = await channel.get_queue(topology.dead_letter_queue)
        await dead_letters.bind(topology.dead_letter_exchange, "#")
        queue = await channel.get_queue(topology.inbound_queue)
        await queue.bind(topology.inbound_exchange, "#")
    log.info(
        "inbound topology ready: %s -> %s (%s), dead letters -> %s (%s)",
        topology.inbound_exchange,
        topology.inbound_queue,
        _kind(used),
        topology.dead_letter_queue,
        _kind(dlq),
    )
    return {"passive": True} if used is None else {"durable": True, "arguments": used}


def _kind(arguments: dict[str, Any] | None) -> str:
    if arguments is None:
        return "as found"
    return str(arguments.get("x-queue-type", "classic"))


async def _declare_queue(
    connection: AbstractConnection,
    name: str,
    quorum: dict[str, Any],
    classic: dict[str, Any],
) -> dict[str, Any] | None:
    """Declare a durable queue, as a quorum queue where the broker has them; returns the
    arguments used (None: it existed with other arguments, so it is used as it is)."""
    try:
        async with connection.channel(publisher_confirms=False) as channel:
            await channel.declare_queue(name, durable=True, arguments=quorum)
        return quorum
    except (AMQPChannelError, ChannelClosed) as exc:
        log.info("declaring queue %s as a quorum queue was refused (%s)", name, exc)
    try:
        async with connection.channel(publisher_confirms=False) as channel:
            await channel.declare_queue(name, passive=True)
        log.warning("queue %s exists with other arguments; using it as it is", name)
        return None
    except (AMQPChannelError, ChannelClosed):
        pass  # it does not exist, so the broker refused the quorum type: make a classic one
    async with connection.channel(publisher_confirms=False) as channel:
        await channel.declare_queue(name, durable=True, arguments=classic)
    return classic


async def inbound_queue(
    channel: AbstractChannel, topology: Topology, declared: dict[str, Any]
) -> AbstractQueue:
    """The inbound queue on ``channel``, redeclared as ``declare_inbound`` found it."""
    return await channel.declare_queue(topology.inbound_queue, **declared)
