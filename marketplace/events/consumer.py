"""The inbound consumer: ``marketplace.inbound`` -> a handler, with manual acks.

Per delivery: validate (``messages.parse``); skip it when its message id is in the inbox
already; apply it through the handler; record the id in the inbox; ack. Effects are idempotent
by message id on their own too (a crash between effect and record repeats a no-op).

A message that can never take effect (no message id, bad JSON, unknown routing key, invalid
payload, or a handler's ``Rejected``) is dead-lettered at once, with the reason in the
``x-marketplace-error`` header. Any other failure counts as transient: the message goes back
to the end of the queue after a backoff, with its attempt count in ``x-marketplace-attempts``
(plus the quorum queue's ``x-delivery-count`` for deliveries lost with a consumer), and is
dead-lettered once it has failed ``max_attempts`` times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from marketplace.config import Settings
from marketplace.events import inbox
from marketplace.events.messages import InboundMessage, Rejected, parse
from marketplace.events.publisher import connect
from marketplace.events.topology import Topology, declare_inbound, inbound_queue

log = logging.getLogger(__name__)

ERROR_HEADER = "x-marketplace-error"
ATTEMPTS_HEADER = "x-marketplace-attempts"
# The original routing key and sender (validated user_id), kept across our own retries; read
# only from a message this consumer republished (``Consumer._origin``).
ROUTING_KEY_HEADER = "x-marketplace-routing-key"
SOURCE_HEADER = "x-marketplace-source"
MAX_REASON = 1000
PUBLISH_TIMEOUT_S = 15.0

Handler = Callable[[InboundMessage], Awaitable[None]]


@dataclass
class ConsumerStats:
    """Counters since the consumer started."""

    received: int = 0
    processed: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    last_error: str | None = None


def attempts_of(message: AbstractIncomingMessage) -> int:
    """How many times this message already failed (0 on its first delivery)."""
    headers = message.headers or {}
    ours = _as_int(headers.get(ATTEMPTS_HEADER))
    delivery_count = headers.get("x-delivery-count")  # quorum queues count redeliveries
    if delivery_count is not None:
        return ours + _as_int(delivery_count)
    return ours + (1 if message.redelivered else 0)


def _as_int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def retry_delay(attempt: int) -> float:
    """Seconds to wait before putting a message back after its ``attempt``-th failure."""
    return float(min(0.2 * 2 ** (attempt - 1), 10.0))


class Consumer:
    """Consumes the inbound queue until cancelled; reconnects by itself."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        handler: Handler,
        engine: AsyncEngine | None,
        *,
        prefetch: int = 32,
        max_attempts: int = 5,
    ) -> None:
        self.url = url
        self.topology = topology
        self.handler = handler
        self.engine = engine
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self.stats = ConsumerStats()
        self._connection: AbstractRobustConnection | None = None
        self._consume_channel: AbstractChannel | None = None
        self._publish_channel: AbstractChannel | None = None
        self._dead_letters: AbstractExchange | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, handler: Handler, engine: AsyncEngine | None
    ) -> Consumer:
        """A consumer configured by ``settings`` (which must name a broker)."""
        if not settings.amqp_url:
            raise ValueError("the inbound consumer needs MARKETPLACE_AMQP_URL")
        return cls(
            settings.amqp_url,
            Topology.from_settings(settings),
            handler,
            engine,
            prefetch=settings.inbound_prefetch,
            max_attempts=settings.inbound_max_attempts,
        )

    @property
    def connected(self) -> bool:
        """Whether the consumer's channel is open."""
        return self._consume_channel is not None and not self._consume_channel.is_closed

    def snapshot(self) -> dict[str, Any]:
        """Counters and whether it is connected."""
        return {**self.stats.__dict__, "connected": self.connected}

    async def run(self) -> None:
        """Connect (retrying forever with backoff) and consume; returns only when cancelled."""
        try:
            while True:
                async for attempt in AsyncRetrying(
                    wait=wait_exponential_jitter(initial=0.1, max=5.0, jitter=0.5),
                    retry=retry_if_exception_type(Exception),
                    before_sleep=self._note_failure,
                ):
                    with attempt:
                        await self._start()
                # The robust connection reconnects and restores the consumer by itself; start
                # over only if it ends for good.
                if self._connection is not None:
                    await self._connection.closed()
                log.warning("inbound connection closed; reconnecting")
                await self.close()
        finally:
            await self.close()

    def _note_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats.last_error = repr(exc)
        level = logging.WARNING if state.attempt_number % 50 in (1, 10) else logging.DEBUG
        log.log(level, "inbound consumer cannot start (attempt %d): %r", state.attempt_number, exc)

    async def _start(self) -> None:
        await self.close()
        connection = await connect(self.url)
        try:
            declared = await declare_inbound(connection, self.topology)
            publish_channel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            dead_letters = await publish_channel.get_exchange(
                self.topology.dead_letter_exchange, ensure=False
            )
            consume_channel = await connection.channel()
            await consume_channel.set_qos(prefetch_count=self.prefetch)
            queue = await inbound_queue(consume_channel, self.topology, declared)
            self._connection = connection
            self._publish_channel, self._dead_letters = publish_channel, dead_letters
            self._consume_channel = consume_channel
            connection.reconnect_callbacks.add(self._on_reconnect)
            await queue.consume(self._on_message, no_ack=False)
        except BaseException:
            self._connection = None
            await connection.close()
            raise
        log.info("consuming %s", self.topology.inbound_queue)

    def _on_reconnect(self, connection: AbstractRobustConnection | None) -> None:
        # The broker may have lost what was declared on throw-away channels (a reset node).
        if connection is not None:
            task = asyncio.get_running_loop().create_task(self._redeclare(connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _redeclare(self, connection: AbstractRobustConnection) -> None:
        try:
            await declare_inbound(connection, self.topology)
        except Exception:
            log.warning("redeclaring the inbound topology failed", exc_info=True)

    async def close(self) -> None:
        """Close the connection, if any."""
        connection, self._connection = self._connection, None
        self._consume_channel = self._publish_channel = self._dead_letters = None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:
                log.debug("closing the consumer's connection failed", exc_info=True)

    # -- one delivery ------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.stats.received += 1
        routing_key, source = self._origin(message)
        try:
            await self._handle(message, routing_key, source)
        except asyncio.CancelledError:
            raise  # the channel closed: the broker redelivers the message
        except Exception:
            # Acking or republishing failed (connection lost): the broker redelivers it.
            log.warning("settling message %s failed", message.message_id, exc_info=True)

    def _origin(self, message: AbstractIncomingMessage) -> tuple[str, str | None]:
        """The routing key a message was sent with, and its sender's validated ``user_id``.

        A retry is republished through the default exchange straight to the inbound queue,
        with both in headers; any other message's headers are the sender's own, and trusting
        them would let a sender pick a routing key that the broker's topic permissions refuse
        it, or another sender's id space.
        """
        if not message.exchange and message.routing_key == self.topology.inbound_queue:
            headers = message.headers or {}
            source = headers.get(SOURCE_HEADER)
            return str(headers.get(ROUTING_KEY_HEADER) or ""), str(source) if source else None
        return message.routing_key or "", message.user_id or None

    async def _handle(
        self, message: AbstractIncomingMessage, routing_key: str, source: str | None
    ) -> None:
        try:
            inbound = parse(message.message_id, routing_key, message.body, source)
        except Rejected as rejected:
            await self._dead_letter(message, routing_key, rejected.reason, source)
            return
        try:
            if self.engine is not None and await inbox.seen(self.engine, inbound.message_id):
                self.stats.duplicates += 1
                await message.ack()
                return
            await self.handler(inbound)
            fresh = True
            if self.engine is not None:
                fresh = await inbox.record(self.engine, inbound.message_id, routing_key)
        except Rejected as rejected:
            await self._dead_letter(message, routing_key, rejected.reason, source)
            return
        except Exception as exc:
            await self._retry_or_dead_letter(message, routing_key, source, exc)
            return
        if fresh:
            self.stats.processed += 1
        else:
            self.stats.duplicates += 1
        await message.ack()

    async def _retry_or_dead_letter(
        self,
        message: AbstractIncomingMessage,
        routing_key: str,
        source: str | None,
        exc: Exception,
    ) -> None:
        attempt = attempts_of(message) + 1
        self.stats.last_error = repr(exc)
        if attempt >= self.max_attempts:
            reason = f"failed {attempt} times; last: {exc!r}"
            await self._dead_letter(message, routing_key, reason, source)
            return
        log.info("message %s failed (attempt %d): %r", message.message_id, attempt, exc)
        await asyncio.sleep(retry_delay(attempt))
        assert self._publish_channel is not None
        await self._publish_channel.default_exchange.publish(
            _copy(message, routing_key, source, {ATTEMPTS_HEADER: attempt}),
            routing_key=self.topology.inbound_queue,
            mandatory=True,
            timeout=PUBLISH_TIMEOUT_S,
        )
        await message.ack()
        self.stats.retried += 1

    async def _dead_letter(
        self, message: AbstractIncomingMessage, routing_key: str, reason: str, source: str | None
    ) -> None:
        """To the dead-letter exchange with the reason; if that fails, reject it without
        requeue, so the queue's own dead-lettering moves it (reason then in ``x-death``)."""
        log.warning("dead-lettering message %s: %s", message.message_id, reason)
        try:
            assert self._dead_letters is not None
            await self._dead_letters.publish(
                _copy(message, routing_key, source, {ERROR_HEADER: reason[:MAX_REASON]}),
                routing_key=routing_key or "unrouted",
                mandatory=True,
                timeout=PUBLISH_TIMEOUT_S,
            )
        except Exception:
            log.warning("publishing to %s failed; rejecting", self._dead_letters, exc_info=True)
            await message.reject(requeue=False)
        else:
            await message.ack()
        self.stats.dead_lettered += 1


def _copy(
    message: AbstractIncomingMessage, routing_key: str, source: str | None, extra: dict[str, Any]
) -> aio_pika.Message:
    # user_id is not copied: the broker accepts it only from the sender's own connection.
    headers = dict(message.headers or {})
    headers.pop("x-delivery-count", None)
    headers.pop(SOURCE_HEADER, None)
    headers.update({ROUTING_KEY_HEADER: routing_key, **extra})
    if source:
        headers[SOURCE_HEADER] = source
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )
