"""Typed handles: an actor called through its protocol's methods, never by a method's name.

``Remote[CatalogShardApi]`` wraps a Ray actor handle; ``await ref.call(CatalogShardApi.get_products,
ids)`` is ``handle.get_products.remote(ids)`` with the arguments and the result checked by mypy
against ``actors.protocols``, and a domain error raised as itself (``actors.calls.call``).
``Directory.route``, ``at`` and ``every`` hand these out; ``Directory.batched`` hands out the
batched kind (``actors.batching.CallBatcher``), which takes the same method references.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ray.actor import ActorHandle

from actors.calls import call
from actors.faults import FAULTS

A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R")


class Remote(Generic[A]):
    """One actor, whose protocol is ``A``."""

    def __init__(self, handle: ActorHandle[Any], kind: str | None = None) -> None:
        self.handle = handle
        self.kind = kind

    def call(
        self,
        method: Callable[Concatenate[A, P], Awaitable[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Awaitable[R]:
        """Call ``method`` on the actor: its result, or its domain error raised as itself."""
        if self.kind is not None and FAULTS.touches(self.kind):
            ref = partial(getattr(self.handle, method.__name__).remote, *args, **kwargs)
            return FAULTS.through(self.kind, lambda: call(ref()))
        return call(getattr(self.handle, method.__name__).remote(*args, **kwargs))

    def __repr__(self) -> str:
        return f"Remote({self.handle!r})"
