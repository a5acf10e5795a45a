"""Typed handles: an actor called through its protocol's methods, never by a method's name.

``Remote[CatalogShardApi]`` wraps the endpoint of one role (``actors.endpoints``: its own Ray
actor, the cell hosting it, or this process); ``await ref.call(CatalogShardApi.get_products,
ids)`` is ``handle.get_products.remote(ids)`` (or its counterpart) with the arguments and the
result checked by mypy against ``actors.protocols``, and a domain error raised as itself
(``actors.calls.call``). ``Directory.route``, ``at`` and ``every`` hand these out;
``Directory.batched`` hands out the batched kind (``actors.batching.CallBatcher``), which takes
the same method references.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Concatenate, Generic, ParamSpec, TypeVar

from opentelemetry.trace import Span

from actors.endpoints import Endpoint
from actors.faults import FAULTS
from marketplace import tracing

A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R")


class Remote(Generic[A]):
    """One actor, whose protocol is ``A``."""

    def __init__(self, endpoint: Endpoint, kind: str | None = None) -> None:
        self.endpoint = endpoint
        self.kind = kind

    def call(
        self,
        method: Callable[Concatenate[A, P], Awaitable[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Awaitable[R]:
        """Call ``method`` on the actor: its result, or its domain error raised as itself.

        A fault injected into this process on calls to the actor's kind applies whether the
        actor is another process or this one (a colocated cell's own role).
        """
        return self._invoke(method.__name__, args, kwargs, retry=True)

    def poll(
        self,
        method: Callable[Concatenate[A, P], Awaitable[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Awaitable[R]:
        """``call`` for a long poll whose caller polls again after a failure: Ray does not
        retry it when the actor dies, so the polls pending at a kill (every shutdown) end
        there instead of each being retried and logged."""
        return self._invoke(method.__name__, args, kwargs, retry=False)

    def _invoke(
        self, name: str, args: tuple[object, ...], kwargs: dict[str, object], *, retry: bool
    ) -> Awaitable[R]:
        traced = None if self.kind is None else tracing.start_call(self.kind, name)
        if traced is not None:
            kwargs = {**kwargs, tracing.TRACE_KW: traced[1]}
        answer: Awaitable[R]
        if self.kind is not None and FAULTS.touches(self.kind):
            answer = FAULTS.through(
                self.kind, lambda: self.endpoint.invoke(name, args, kwargs, retry=retry)
            )
        else:
            answer = self.endpoint.invoke(name, args, kwargs, retry=retry)
        return answer if traced is None else _ended(traced[0], answer)

    def __repr__(self) -> str:
        return f"Remote({self.endpoint!r})"


async def _ended(span: Span, answer: Awaitable[R]) -> R:
    """``answer``, ending the call's span when it comes."""
    try:
        result = await answer
    except BaseException as exc:
        tracing.end_call(span, exc)
        raise
    tracing.end_call(span, None)
    return result
