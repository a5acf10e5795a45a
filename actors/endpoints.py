"""Where a call to one named role goes: its own Ray actor, the cell that hosts it, or this process.

``Remote`` and ``CallBatcher`` (through ``Directory``) send every call through an ``Endpoint``:

- ``ActorEndpoint``: the role is a Ray actor of its own (the ``distributed`` topology, and the
  bridge actors always): ``handle.<method>.remote(...)`` and ``handle.run_batch.remote(calls)``.
- ``CellEndpoint``: the role lives in a cell in another process (the ``colocated`` topology):
  ``cell.invoke.remote(name, method, args, kwargs)`` and ``cell.run_batch_for.remote(name,
  calls)``.
- ``LocalEndpoint``: the role lives in this very process (a cell calling one of its own roles):
  the method is awaited directly, no Ray.

A local call keeps what a Ray call promises its two sides: the arguments and the result are
copies wherever they could be shared and changed (frozen pydantic models of immutable fields,
tuples of them and plain scalars go as they are, anything else is deep-copied); a domain error
is raised as itself, as ``actors.calls.call`` raises it; and the call runs as a task of its own,
so a caller that stops waiting (a saga step's timeout) does not cancel the work half way, as
a Ray call goes on in its actor when its caller gives up.

The roles a process hosts are registered here (``host``) by the cell that built them, by
namespace and name, so every ``Directory`` in that process finds them.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import decimal
import enum
import logging
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol

from pydantic import BaseModel
from ray.actor import ActorHandle

from actors.batching import Call, public_method, run_calls
from actors.calls import call

log = logging.getLogger(__name__)

# The roles hosted in this process, by (namespace, name): filled by ``actors.cell.Cell``.
_HOSTED: dict[tuple[str, str], object] = {}

_ATOMS = (
    str,
    bytes,
    int,
    float,
    complex,
    bool,
    type(None),
    enum.Enum,
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
)


def host(namespace: str, name: str, role: object) -> None:
    """Register ``role`` as the role ``name`` of ``namespace``, hosted in this process."""
    _HOSTED[(namespace, name)] = role


def unhost(namespace: str, name: str) -> None:
    """Forget a hosted role (a test that builds cells in process)."""
    _HOSTED.pop((namespace, name), None)


def hosted(namespace: str, name: str) -> object | None:
    """The role ``name`` of ``namespace`` when this process hosts it, else None."""
    return _HOSTED.get((namespace, name))


def immutable(value: Any) -> bool:
    """Whether ``value`` can be shared between caller and callee: nothing in it can change."""
    if isinstance(value, _ATOMS):
        return True
    if isinstance(value, tuple | frozenset):
        return all(immutable(item) for item in value)
    if isinstance(value, BaseModel) and value.model_config.get("frozen"):
        return all(immutable(item) for item in value.__dict__.values())
    return False


def isolated(value: Any) -> Any:
    """``value`` itself when it cannot change, else a deep copy (what pickling would give)."""
    return value if immutable(value) else copy.deepcopy(value)


class Endpoint(Protocol):
    """How calls reach one named role."""

    def invoke(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, retry: bool = True
    ) -> Awaitable[Any]:
        """Call ``method``: its result, or its domain error raised as itself. ``retry=False``:
        Ray does not send it again if the actor dies meanwhile (a long poll its caller repeats
        itself)."""
        ...

    def run_batch(self, calls: list[Call]) -> Awaitable[list[tuple[bool, Any]]]:
        """Run ``calls`` concurrently (``actors.batching.run_calls``), one answer each."""
        ...


class ActorEndpoint:
    """A role that is a Ray actor of its own."""

    def __init__(self, handle: ActorHandle[Any]) -> None:
        self.handle = handle

    def invoke(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, retry: bool = True
    ) -> Awaitable[Any]:
        """``handle.<method>.remote(*args, **kwargs)``, submitted now."""
        bound = getattr(self.handle, method)
        if not retry:
            bound = bound.options(max_task_retries=0)
        return call(bound.remote(*args, **kwargs))

    def run_batch(self, calls: list[Call]) -> Awaitable[list[tuple[bool, Any]]]:
        """``handle.run_batch.remote(calls)``, submitted now."""
        ref: Awaitable[list[tuple[bool, Any]]] = self.handle.run_batch.remote(calls)
        return ref

    def __repr__(self) -> str:
        return f"ActorEndpoint({self.handle!r})"


class CellEndpoint:
    """A role hosted by a cell in another process."""

    def __init__(self, handle: ActorHandle[Any], name: str) -> None:
        self.handle = handle
        self.name = name

    def invoke(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, retry: bool = True
    ) -> Awaitable[Any]:
        """``cell.invoke.remote(name, method, args, kwargs)``, submitted now."""
        bound: Any = self.handle.invoke
        if not retry:
            bound = bound.options(max_task_retries=0)
        return call(bound.remote(self.name, method, args, kwargs))

    def run_batch(self, calls: list[Call]) -> Awaitable[list[tuple[bool, Any]]]:
        """``cell.run_batch_for.remote(name, calls)``, submitted now."""
        ref: Awaitable[list[tuple[bool, Any]]] = self.handle.run_batch_for.remote(self.name, calls)
        return ref

    def __repr__(self) -> str:
        return f"CellEndpoint({self.name} in {self.handle!r})"


class LocalEndpoint:
    """A role hosted in this process: called directly, with Ray's copy and cancel semantics."""

    def __init__(self, role: object, name: str) -> None:
        self.role = role
        self.name = name

    def invoke(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, retry: bool = True
    ) -> Awaitable[Any]:
        """Start ``role.<method>`` now, on copies of what could change; await its copied result
        (``retry`` has nothing to do here: this process cannot outlive the role)."""
        bound = public_method(self.role, method)
        args = tuple(isolated(arg) for arg in args)
        kwargs = {key: isolated(value) for key, value in kwargs.items()}
        return _detached(_copied(bound(*args, **kwargs)))

    def run_batch(self, calls: list[Call]) -> Awaitable[list[tuple[bool, Any]]]:
        """``run_calls`` on the role, started now, on copies; each answer copied back."""
        copied = [
            (method, tuple(isolated(a) for a in args), {k: isolated(v) for k, v in kw.items()})
            for method, args, kw in calls
        ]
        return _detached(_answers(run_calls(self.role, copied)))

    def __repr__(self) -> str:
        return f"LocalEndpoint({self.name})"


async def _copied(awaitable: Awaitable[Any]) -> Any:
    return isolated(await awaitable)


async def _answers(awaitable: Awaitable[list[tuple[bool, Any]]]) -> list[tuple[bool, Any]]:
    return [(ok, isolated(value) if ok else value) for ok, value in await awaitable]


def _detached(coroutine: Any) -> Awaitable[Any]:
    """Run ``coroutine`` as a task of its own; its caller's cancellation leaves it running."""
    task = asyncio.get_running_loop().create_task(coroutine)
    task.add_done_callback(_retrieve)
    return asyncio.shield(task)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Read the outcome of a task nobody may await any more (its caller gave up), so asyncio
    # does not log "exception was never retrieved"; the caller that still waits gets it.
    if not task.cancelled():
        task.exception()
