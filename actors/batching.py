"""Many actor calls in one Ray call: the saga's steps of concurrent orders travel together.

A Ray actor call (serialization, task submission and dispatch at both ends) costs more CPU than
most saga steps cost the actor that runs them. A ``CallBatcher`` sends every call made to its
actor in the same turn of the event loop as one ``run_batch`` call, which the actor runs
concurrently and answers with one result per call.

No call waits for a timer or for an earlier batch: a lone call leaves at the end of the turn it
was made in. Under load batches form by themselves, because the callers of one batch resume
together when it answers and make their next calls in the same turn. A batch answers when its
slowest call is done, so only calls of about the same length should share a batcher.

Ray retries a batch whose actor died (``max_task_retries``) like any call, so everything sent
this way must be idempotent, as the saga's steps are. A call's error comes back as itself:
domain errors are raised to their caller as the domain error, not wrapped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from opentelemetry.trace import Span

from marketplace import tracing
from marketplace.domain.errors import DomainError
from marketplace.store.failures import database_unavailable, is_transient

log = logging.getLogger(__name__)

# A call as it travels: (method name, positional arguments, keyword arguments).
Call = tuple[str, tuple[Any, ...], dict[str, Any]]
Send = Callable[[list[Call]], Awaitable[list[tuple[bool, Any]]]]
# A call waiting for its batch: the call, its answer, and the caller's span when traced.
_Pending = tuple[Call, "asyncio.Future[Any]", "Span | None"]
A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R")


class CallBatcher(Generic[A]):
    """Collects ``call(method, *args)`` made in one loop turn into one ``send(calls)``.

    ``A`` is the protocol of the actor it calls (``actors.protocols``): a call names the
    protocol's method (``batcher.call(CartShardApi.get_cart, buyer_id)``), so mypy checks its
    arguments and result; only the method's name travels.
    """

    def __init__(
        self,
        send: Send,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
        kind: str = "actor",
    ) -> None:
        """``on_batch`` is told the size of each batch as it leaves (for metrics); ``kind``
        names the actor in traces."""
        self._send = send
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._kind = kind
        self._pending: list[_Pending] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unanswered: set[asyncio.Future[Any]] = set()
        self.batches = 0
        self.calls = 0

    async def call(
        self,
        method: Callable[Concatenate[A, P], Awaitable[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Call ``method(*args, **kwargs)`` on the actor; its result, or its exception here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._enqueue(loop, method.__name__, args, kwargs, future)
        return await future

    def tell(
        self,
        method: Callable[Concatenate[A, P], Awaitable[object]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """Call ``method(*args, **kwargs)`` without waiting for it; a failure is only logged."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(partial(_log_failure, method.__name__))
        self._enqueue(loop, method.__name__, args, kwargs, future)

    async def settle(self) -> None:
        """Wait until every call made so far on this loop is answered, ``tell`` ones included.

        Calls made while it waits are not waited for, so a steady load cannot keep it waiting.
        """
        loop = asyncio.get_running_loop()
        sent = [f for f in self._unanswered if f.get_loop() is loop]
        if sent:
            await asyncio.wait(sent)

    def _enqueue(
        self,
        loop: asyncio.AbstractEventLoop,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: asyncio.Future[Any],
    ) -> None:
        self._unanswered.add(future)
        future.add_done_callback(self._unanswered.discard)
        # A traced caller's span covers the call from here: its wait for the batch to leave
        # (the ``sent`` event marks it), the Ray call and the callee's work.
        traced = tracing.start_call(self._kind, method)
        span = None
        if traced is not None:
            span, parent = traced
            kwargs = {**kwargs, tracing.TRACE_KW: parent}
            future.add_done_callback(partial(_end_span, span))
        self._pending.append(((method, args, kwargs), future, span))
        # Scheduled once per turn, on the caller's loop (a notebook or a test may run several
        # loops one after another; a dispatch left on a closed one would never run).
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled_on = None
        loop = asyncio.get_running_loop()
        pending = [p for p in self._pending if p[1].get_loop() is loop and not p[1].done()]
        self._pending = [
            p
            for p in self._pending
            if p[1].get_loop() is not loop and not p[1].get_loop().is_closed()
        ]
        for start in range(0, len(pending), self._max_batch):
            task = asyncio.get_running_loop().create_task(
                self._deliver(pending[start : start + self._max_batch])
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.calls += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        for _, _, span in batch:
            if span is not None:
                span.add_event(tracing.SENT, {tracing.BATCH_SIZE: len(batch)})
        try:
            results = await self._send([call for call, _, _ in batch])
        except asyncio.CancelledError:
            for _, future, _ in batch:
                future.cancel()
            raise
        except Exception as exc:  # the whole batch failed: the actor, or the transport
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future, _), (ok, value) in zip(batch, results, strict=True):
            if future.done():  # its caller gave up (a timeout)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def public_method(target: object, method: str) -> Any:
    """``target.<method>`` when another actor may call it: never a private one."""
    if method.startswith("_"):
        raise AttributeError(f"{method} may not be called on another actor")
    return getattr(target, method)


async def run_calls(target: object, calls: list[Call]) -> list[tuple[bool, Any]]:
    """Run ``calls`` on ``target`` concurrently: (True, result) or (False, exception) each.

    Only public coroutine methods may be called this way.
    """

    async def one(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, Any]:
        try:
            bound = public_method(target, method)
        except AttributeError as exc:
            return False, exc
        try:
            return True, await bound(*args, **kwargs)
        except DomainError as exc:
            return False, exc
        except Exception as exc:
            if is_transient(exc):  # a read that met a database outage: a 503 to retry
                return False, database_unavailable(exc)
            # Anything else goes back as a plain error that is sure to pickle.
            return False, BatchedCallFailed(f"{method} failed: {exc!r}")

    return list(await asyncio.gather(*(one(*call) for call in calls)))


class BatchedCallFailed(RuntimeError):
    """A call in a batch failed with something other than a domain error."""


def _end_span(span: Span, future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        tracing.end_call(span, asyncio.CancelledError())
    else:
        tracing.end_call(span, future.exception())


def _log_failure(method: str, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("%s (not awaited) failed: %r", method, future.exception())
