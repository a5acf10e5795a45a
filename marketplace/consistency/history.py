"""Recording a history of product reads and writes, Jepsen-style.

Each client operation is recorded twice: when the client invokes it and when it learns the
outcome. ``History.invoke`` takes the invoke time and returns a ``Pending`` handle;
``complete``, ``fail`` or ``unknown`` closes it into an ``Operation``. Times come from one
monotonic clock, so a history compares times across clients of one process (and across
processes of one host where they share ``time.monotonic``).

A history saves to and loads from JSON lines: a header line (format, initial versions) and
then one line per operation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

FORMAT = "marketplace.history/1"
# A product is created at version 1 (actors.catalog) and each write adds one.
INITIAL_VERSION = 1


class Kind(StrEnum):
    """What an operation did to a product."""

    READ = "read"
    WRITE = "write"


class Outcome(StrEnum):
    """What the client learnt: applied, surely not applied, or maybe applied (a timeout)."""

    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Pending:
    """An invoked operation whose outcome is not known yet: a handle to close it with."""

    id: int
    client: str
    kind: Kind
    product_id: str
    invoke: float


@dataclass(frozen=True, slots=True)
class Operation:
    """One finished client operation.

    ``version`` is the product version the read returned or the write produced (the ETag);
    ``None`` for a failed operation, and for an unknown one when the client cannot tell which
    version the write would have made. ``replica`` names who answered a read, where known.
    """

    id: int
    client: str
    kind: Kind
    product_id: str
    invoke: float
    complete: float
    outcome: Outcome
    version: int | None = None
    replica: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The operation as one JSON object (a line of the saved history)."""
        return {
            "id": self.id,
            "client": self.client,
            "kind": self.kind.value,
            "product_id": self.product_id,
            "invoke": self.invoke,
            "complete": self.complete,
            "outcome": self.outcome.value,
            "version": self.version,
            "replica": self.replica,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Operation:
        """The operation ``to_json`` wrote."""
        return cls(
            id=int(data["id"]),
            client=str(data["client"]),
            kind=Kind(data["kind"]),
            product_id=str(data["product_id"]),
            invoke=float(data["invoke"]),
            complete=float(data["complete"]),
            outcome=Outcome(data["outcome"]),
            version=None if data.get("version") is None else int(data["version"]),
            replica=None if data.get("replica") is None else str(data["replica"]),
        )


@dataclass
class Call:
    """What the body of ``History.recording`` reports: set ``version`` once it is known.

    Leaving the block normally with a version records ``ok``; ``failed()`` marks an answer that
    surely changed nothing (a refusal); an exception, or no version, records ``unknown``.
    """

    version: int | None = None
    replica: str | None = None
    refused: bool = field(default=False, init=False)

    def failed(self) -> None:
        """The operation surely did not take effect."""
        self.refused = True


class History:
    """A recorder of client operations, safe to share between asyncio tasks and threads.

    ``initial_version`` is every product's version before the history starts (``None``: not
    known, so no read of an older version counts as a phantom); ``set_initial`` overrides it
    for one product (a product written before recording began).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        initial_version: int | None = INITIAL_VERSION,
    ) -> None:
        self._clock = clock
        self.initial_version = initial_version
        self._initial: dict[str, int] = {}
        self._next_id = 0
        self._pending: dict[int, Pending] = {}
        self._done: list[Operation] = []
        # Appends are atomic under asyncio already; the lock makes threads safe too.
        self._lock = threading.Lock()

    def set_initial(self, product_id: str, version: int) -> None:
        """Record that ``product_id`` was at ``version`` when the history began."""
        with self._lock:
            self._initial[product_id] = version

    def initial_of(self, product_id: str) -> int | None:
        """The product's version when the history began, ``None`` when not known."""
        return self._initial.get(product_id, self.initial_version)

    @property
    def initial_versions(self) -> dict[str, int]:
        """The per-product initial versions set with ``set_initial``."""
        return dict(self._initial)

    def invoke(self, client: str, kind: Kind | str, product_id: str) -> Pending:
        """Record that ``client`` starts an operation now; close it with the handle returned."""
        at = self._clock()
        with self._lock:
            pending = Pending(self._next_id, client, Kind(kind), product_id, at)
            self._next_id += 1
            self._pending[pending.id] = pending
        return pending

    def complete(self, pending: Pending, version: int, *, replica: str | None = None) -> Operation:
        """The operation took effect: the read returned, or the write made, ``version``."""
        return self._close(pending, Outcome.OK, version, replica)

    def fail(self, pending: Pending) -> Operation:
        """The operation surely did not take effect (a refusal, a connection never made)."""
        return self._close(pending, Outcome.FAILED, None, None)

    def unknown(self, pending: Pending, version: int | None = None) -> Operation:
        """The outcome is not known (a timeout): a write may or may not have been applied.

        Give ``version`` when the client knows which version the write would make (a
        conditional write at ``If-Match: v`` makes ``v + 1``).
        """
        return self._close(pending, Outcome.UNKNOWN, version, None)

    @contextmanager
    def recording(
        self,
        client: str,
        kind: Kind | str,
        product_id: str,
        *,
        refused: Callable[[BaseException], bool] | None = None,
    ) -> Iterator[Call]:
        """Record the operation the block performs (also usable inside coroutines)::

            with history.recording("buyer-1", "read", pid) as call:
                call.version = (await client.get_product(pid)).version

        An exception leaving the block records ``unknown`` (the request may have been
        applied) unless ``refused(exc)`` says it surely was not: then ``failed``.
        """
        pending = self.invoke(client, kind, product_id)
        call = Call()
        try:
            yield call
        except BaseException as exc:
            surely_not = call.refused or (refused is not None and refused(exc))
            self._close(pending, Outcome.FAILED if surely_not else Outcome.UNKNOWN, None, None)
            raise
        if call.refused:
            self.fail(pending)
        elif call.version is None:
            self.unknown(pending)
        else:
            self.complete(pending, call.version, replica=call.replica)

    def _close(
        self, pending: Pending, outcome: Outcome, version: int | None, replica: str | None
    ) -> Operation:
        at = self._clock()
        with self._lock:
            if self._pending.pop(pending.id, None) is None:
                raise ValueError(f"operation {pending.id} is not in flight in this history")
            op = Operation(
                id=pending.id,
                client=pending.client,
                kind=pending.kind,
                product_id=pending.product_id,
                invoke=pending.invoke,
                complete=at,
                outcome=outcome,
                version=version,
                replica=replica,
            )
            self._done.append(op)
        return op

    def operations(self) -> list[Operation]:
        """Every operation, in order of completion; those still in flight as ``unknown``.

        An operation in flight may still take effect, so it ends, for the checker, now.
        """
        at = self._clock()
        with self._lock:
            open_ops = [
                Operation(p.id, p.client, p.kind, p.product_id, p.invoke, at, Outcome.UNKNOWN)
                for p in self._pending.values()
            ]
            return [*self._done, *open_ops]

    def __len__(self) -> int:
        with self._lock:
            return len(self._done) + len(self._pending)

    def extend(self, operations: Iterable[Operation]) -> None:
        """Add finished operations (a loaded or generated history)."""
        with self._lock:
            for op in operations:
                self._done.append(op)
                self._next_id = max(self._next_id, op.id + 1)

    def save(self, path: Path | str) -> None:
        """Write the history as JSON lines: a header, then one operation per line."""
        header = {
            "format": FORMAT,
            "initial_version": self.initial_version,
            "initial": self.initial_versions,
        }
        lines = [orjson.dumps(header)]
        lines.extend(orjson.dumps(op.to_json()) for op in self.operations())
        Path(path).write_bytes(b"\n".join(lines) + b"\n")

    @classmethod
    def load(cls, path: Path | str) -> History:
        """The history ``save`` wrote."""
        lines = [line for line in Path(path).read_bytes().splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path}: empty, not a history")
        header = orjson.loads(lines[0])
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        history = cls(initial_version=header.get("initial_version"))
        for product_id, version in header.get("initial", {}).items():
            history.set_initial(product_id, int(version))
        history.extend(Operation.from_json(orjson.loads(line)) for line in lines[1:])
        return history
