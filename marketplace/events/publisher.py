"""Publishing envelopes to ``marketplace.events``: robust connection, publisher confirms,
persistent messages, mandatory routing with returned messages treated as failures (with the
archive queue on, every event routes to it, so only a missing topology is returned)."""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from marketplace.events.envelope import CONTENT_TYPE, Envelope
from marketplace.events.topology import Topology, declare_events_archive, declare_events_exchange

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 10.0


class PublishFailed(Exception):
    """The broker did not take an event (nack, return, timeout or a lost connection)."""


def to_message(envelope: Envelope) -> aio_pika.Message:
    """The AMQP message of an envelope: message id = event id, type = event type."""
    return aio_pika.Message(
        body=envelope.to_json(),
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=envelope.id,
        type=envelope.type,
        timestamp=envelope.time,
        app_id=envelope.source,
        headers={"subject": envelope.subject, "sequence": envelope.sequence},
    )


async def connect(url: str) -> AbstractRobustConnection:
    """A robust connection (it reconnects by itself once it has connected once)."""
    return await aio_pika.connect_robust(
        url, reconnect_interval=RECONNECT_INTERVAL_S, timeout=CONNECT_TIMEOUT_S
    )


class Publisher:
    """Publishes envelopes and waits for the broker's confirm of each."""

    def __init__(self, url: str, topology: Topology, *, timeout_s: float = 15.0) -> None:
        self.url = url
        self.topology = topology
        self.timeout_s = timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    @property
    def connected(self) -> bool:
        """Whether publishing can be attempted now (the channel is open)."""
        return self._channel is not None and not self._channel.is_closed

    async def connect(self) -> None:
        """Connect (raises while the broker is unreachable) and declare the exchange.

        Once connected, the robust connection rides out broker restarts by itself and
        redeclares the exchange; calling this again does nothing.
        """
        if self._connection is not None and not self._connection.is_closed:
            return
        await self.close()
        connection = await connect(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await declare_events_exchange(channel, self.topology)
            await declare_events_archive(connection, self.topology)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange
        log.info("publisher connected; exchange %s", self.topology.events_exchange)

    async def publish(self, envelope: Envelope) -> None:
        """Publish one event and wait for its confirm; ``PublishFailed`` when not confirmed."""
        if self._exchange is None or not self.connected:
            raise PublishFailed("not connected to the broker")
        try:
            await self._exchange.publish(
                to_message(envelope),
                routing_key=envelope.type,
                mandatory=True,
                timeout=self.timeout_s,
            )
        except asyncio.CancelledError:
            raise
        except aio_pika.exceptions.PublishError as exc:
            raise PublishFailed(f"returned unroutable: {envelope.type} {envelope.id}") from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise PublishFailed(f"nacked: {envelope.id}") from exc
        except Exception as exc:
            raise PublishFailed(f"{envelope.id}: {exc!r}") from exc

    async def close(self) -> None:
        """Close the connection, if any."""
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:
                log.debug("closing the publisher's connection failed", exc_info=True)
