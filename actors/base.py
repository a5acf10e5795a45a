"""What every actor shares: settings, its slice of the store, per-key locks, start-up loading."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

import ray
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential
from tenacity.wait import wait_base

from actors.batching import Call, run_calls
from actors.faults import FAULTS, fault_from
from actors.metrics import (
    GAUGE_PERIOD_S,
    ActorMetrics,
    actor_metrics,
    publish_every,
    timed_calls,
    untraced_calls,
)
from marketplace import trace_export
from marketplace.config import Durability, Settings
from marketplace.store.engine import create_engine, sqlite_writer_engine
from marketplace.store.failures import database_unavailable, is_transient
from marketplace.store.writer import FileLock, Writer

log = logging.getLogger(__name__)
T = TypeVar("T")


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Hold the locks of ``keys`` (taken in sorted order, so two holders never dead-lock)."""
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        acquired: list[str] = []
        try:
            for key in ordered:
                await self._locks[key].acquire()
                acquired.append(key)
            yield
        finally:
            for key in acquired:
                self._locks[key].release()
            for key in ordered:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]


def process_identity(owner: object, index: int, count: int) -> dict[str, Any]:
    """Who and where ``owner`` runs: its class name, partition, host and process id (what
    ``ready`` answers; benchmarks count CPU time per process by ``pid``)."""
    return {
        "kind": type(owner).__name__,
        "index": index,
        "count": count,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


class ActorBase:
    """Base of the marketplace actors: ``await self.loaded()`` before touching state.

    State is loaded from the store when the actor starts (and again after every restart), so a
    killed actor comes back with what it had committed. A load that meets the database down
    (``store.failures.is_transient``) is retried with backoff until it succeeds, each attempt
    from the state the actor had before loading; meanwhile ``ready()`` answers 503
    (``TransientFailure``). Any other load failure ends the process when it is a Ray actor, so
    that Ray restarts it and it loads afresh.
    """

    SOURCE = "marketplace"
    # Between attempts to load while the database is unavailable (a test may shorten it).
    LOAD_RETRY_WAIT: wait_base = wait_exponential(multiplier=0.1, max=2.0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        timed_calls(cls)

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        """``writer`` defaults to one per the settings (a test may pass its own, e.g. one
        in ``Durability.NONE``); the engine is the writer's."""
        logging.basicConfig(level=logging.INFO)
        self.settings = Settings.model_validate(settings)
        self.index = index
        self.count = count
        self.locks = KeyedLocks()
        role = self.SOURCE.rpartition("/")[2]
        trace_export.configure(self.settings, f"{role}-{index}")
        # Labelled by role (orders, inventory, ...), as the directory names the kinds.
        self.metrics: ActorMetrics = actor_metrics(
            self.settings.namespace, role, self.settings.metrics
        )
        self.writer = writer or writer_for(self.settings)
        if self.writer.on_commit is None:
            self.writer.on_commit = self.metrics.committed
        self._publisher: asyncio.Task[None] | None = None
        # How many times Ray restarted this actor's process before this one (read at start).
        self._restart_count = 0
        self.engine: AsyncEngine | None = self.writer.engine
        # The transient failure of the last attempt to load, while loading is being retried.
        self._load_failure: BaseException | None = None
        self._loaded: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._start())

    @property
    def store_first(self) -> bool:
        """Whether the store has every change before memory does (the writer commits before a
        change is answered: ``sync`` durability, with a database), so that memory may let
        settled work go and read it back when asked. With ``async`` memory is ahead of the
        store, with ``none`` it is the only copy: both keep everything."""
        return self.writer.mode is Durability.SYNC and self.engine is not None

    async def _start(self) -> None:
        if self.engine is not None:
            try:
                await self._load_until_done()
            except Exception:
                log.exception("%s %d could not load its state", type(self).__name__, self.index)
                if _in_ray_actor():
                    # Not transient, so retrying here would fail the same way; a crash (not
                    # ``exit_actor``, which Ray does not restart) gets a fresh process that
                    # loads again. Left alive, the actor would answer this error forever.
                    _exit_process()
                raise
        await self.started()
        if self.settings.metrics and _in_ray_actor():
            self._restart_count = await asyncio.to_thread(_restarts)
            self._publisher = asyncio.get_running_loop().create_task(
                publish_every(GAUGE_PERIOD_S, self._publish, f"{type(self).__name__}'s gauges")
            )

    async def _load_until_done(self) -> None:
        """``load``, retried while the database is unavailable, each attempt from the state
        the actor had before the first: an attempt that failed half way leaves nothing."""
        before = _containers(self)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=self.LOAD_RETRY_WAIT,
            before_sleep=lambda state: log.warning(
                "%s %d: loading failed (the database is unavailable); retrying: %r",
                type(self).__name__,
                self.index,
                state.outcome.exception() if state.outcome else None,
            ),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    for name, value in before.items():
                        setattr(self, name, copy.copy(value))
                try:
                    await self.load()
                except Exception as exc:
                    if is_transient(exc):
                        self._load_failure = exc
                    raise
        self._load_failure = None

    async def load(self) -> None:
        """Rebuild in-memory state from the store (subclasses override; called only when
        there is a database)."""

    async def started(self) -> None:
        """Run once state is loaded (subclasses override, e.g. to resume work)."""

    async def publish_gauges(self) -> None:
        """Set this actor's own gauges (``actors.metrics``): a subclass that has figures to
        publish overrides it. A Ray actor calls it every ``GAUGE_PERIOD_S``."""

    async def _publish(self) -> None:
        # Every period, like every gauge: Ray drops a gauge's value that is not set again
        # within its TTL.
        role = self.SOURCE.rpartition("/")[2]
        self.metrics.restarts(f"{role}-{self.index}", self._restart_count)
        self.metrics.publish_in_flight()
        await self.publish_gauges()

    async def ready(self) -> dict[str, Any]:
        """Wait for start-up loading; returns who and where this is (used as a health probe,
        and by benchmarks that count CPU time per process).

        Raises ``TransientFailure`` (503) at once while loading waits for the database to come
        back: the outage may last long, and callers that queued here would hold their Ray
        calls and HTTP requests for all of it; a 503 is what a write meeting the same outage
        answers, and every caller retries it with the same key.
        """
        await self.loaded()
        return process_identity(self, self.index, self.count)

    async def loaded(self) -> None:
        """Wait for start-up loading (``ready`` without the identity: every call that touches
        state awaits this first, so once loaded it costs one check). Raises as ``ready``."""
        if self._loaded.done():
            self._loaded.result()  # a load that failed for good raises here, as it would below
            return
        if self._load_failure is not None:
            raise database_unavailable(self._load_failure, f"{type(self).__name__}'s store")
        await asyncio.shield(self._loaded)

    async def inject_fault(self, fault_id: str, spec: dict[str, Any] | None) -> list[str]:
        """Start (or, with None, lift) an injected fault in this actor's process
        (``actors.faults``); returns the ids of the faults in force."""
        FAULTS.inject(fault_id, fault_from(spec))
        return FAULTS.active()

    async def run_batch(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        """Run several of this actor's public methods in one Ray call (``actors.batching``)."""
        return await run_calls(self, calls)

    async def batch_counts(self) -> dict[str, tuple[int, int]]:
        """The batched calls this actor has made to others (``Directory.batch_counts``)."""
        directory = getattr(self, "directory", None)
        return {} if directory is None else directory.batch_counts()

    async def settle(self) -> None:
        """Wait until the calls this actor has sent to others so far are answered, including
        the pushes it does not wait for (a coordinator's order snapshots to the seller view)."""
        await self.loaded()
        directory = getattr(self, "directory", None)
        if directory is not None:
            await directory.settle()

    async def flush(self) -> None:
        """Wait until this actor's sent calls are answered and its queued writes committed."""
        await self.settle()
        await self.writer.drain()

    @property
    def database(self) -> AsyncEngine:
        """The store's engine, for code that runs only when there is one (``load``)."""
        assert self.engine is not None, "no database: durability is none"
        return self.engine


untraced_calls(ActorBase)


def _containers(actor: ActorBase) -> dict[str, Any]:
    """Copies of the actor's plain containers (its dicts, lists and sets) as they are now.

    Loading only fills such containers (objects it calls, a search index say, take the same
    rows again idempotently), so putting these back undoes a half-done load.
    """
    return {
        name: copy.copy(value)
        for name, value in vars(actor).items()
        if isinstance(value, dict | list | set)
    }


def _in_ray_actor() -> bool:
    """Whether this process is a Ray actor (in-process unit tests are not)."""
    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def _restarts() -> int:
    """How many times Ray restarted this actor's process before this one (a GCS lookup)."""
    context = ray.get_runtime_context()
    try:
        # What RuntimeContext.was_current_actor_reconstructed reads, with the count kept.
        from ray._private.state import actors

        return int(actors(actor_id=context.get_actor_id())["NumRestarts"])
    except Exception:  # a private API that may move: the public answer, as 0 or 1
        pass
    try:
        return int(bool(context.was_current_actor_reconstructed))
    except Exception as exc:  # the GCS did not answer: a figure is not worth failing the start
        log.warning("could not read this actor's restart count: %r", exc)
        return 0


def _exit_process() -> None:
    """End this process at once, as a crash, so that Ray restarts the actor."""
    logging.shutdown()
    os._exit(1)


def writer_for(settings: Settings) -> Writer:
    """The writer the settings ask for, on its own engine (none when nothing is written)."""
    durability = settings.durability
    if durability is Durability.NONE:
        return Writer(None, durability)
    engine = create_engine(settings.resolved_database_url())
    return Writer(
        engine, durability, _write_lock(engine, settings), direct=sqlite_writer_engine(engine)
    )


def _write_lock(engine: AsyncEngine | None, settings: Settings) -> FileLock | None:
    """The file lock SQLite writers queue on (None for other databases, or when disabled)."""
    if engine is None or not settings.sqlite_write_lock or engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return FileLock(database + ".writelock")


def chunks(items: list[T], size: int) -> Iterable[list[T]]:
    """Successive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
