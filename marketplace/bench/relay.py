"""Relay benchmark: events per second through the relay with publisher confirms, and the outbox
lag under a checkout load.

    python -m marketplace.bench.relay [--events 20000 --orders 400 --concurrency 16]

Part 1 (no Ray): a fresh SQLite outbox is filled with ``--events`` synthetic events, and the
relay publishes them to the broker, waiting for each confirm, in three shapes: many subjects
(up to ``batch`` chains in flight at once), a few subjects, and one subject (strictly one
confirm round trip after another, the worst case of per-aggregate ordering).

Part 2: a marketplace (local Ray, SQLite, the relay running) takes ``--orders`` checkouts with
``--concurrency`` in flight; the relay's lag is sampled every 100 ms while they run, and the
time to drain it afterwards is measured.

Everything uses its own exchange and queue names (``bench-<hex>.*``), deleted at the end. The
broker is MARKETPLACE_AMQP_URL or ``--amqp-url`` (default: the local one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.bench.stats import nearest_rank, rate
from marketplace.events import outbox
from marketplace.events.relay import OutboxRelay
from marketplace.events.topology import Topology, declare_events_exchange
from marketplace.store.engine import create_engine
from marketplace.store.tables import metadata
from marketplace.store.tables import outbox as outbox_table

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
console = Console()


@dataclass(frozen=True)
class ThroughputRow:
    """One shape of part 1."""

    shape: str
    events: int
    subjects: int
    seconds: float

    @property
    def per_second(self) -> float:
        return rate(self.events, self.seconds)


@dataclass(frozen=True)
class LoadResult:
    """Part 2's figures."""

    orders: int
    confirmed: int
    seconds: float
    events: int
    published: int
    lag_samples: list[int]
    drain_seconds: float

    @property
    def checkouts_per_second(self) -> float:
        return rate(self.orders, self.seconds)


# -- the broker side ---------------------------------------------------------------------------


class Sink:
    """A queue bound to the bench's events exchange, so that mandatory publishing routes."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self.queue_name = f"{topology.events_exchange}.sink"
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> Sink:
        self._connection = await aio_pika.connect(self.url, timeout=10)
        channel = await self._connection.channel()
        await declare_events_exchange(channel, self.topology)
        queue = await channel.declare_queue(self.queue_name, durable=True)
        await queue.bind(self.topology.events_exchange, "#")
        return self

    async def purge(self) -> None:
        assert self._connection is not None
        async with self._connection.channel() as channel:
            queue = await channel.get_queue(self.queue_name)
            await queue.purge()

    async def __aexit__(self, *_: object) -> None:
        assert self._connection is not None
        async with self._connection.channel() as channel:
            await channel.queue_delete(self.queue_name)
            await channel.exchange_delete(self.topology.events_exchange)
        for name in (
            self.topology.inbound_queue,
            self.topology.dead_letter_queue,
        ):
            async with self._connection.channel() as channel:
                await channel.queue_delete(name)
        for name in (self.topology.inbound_exchange, self.topology.dead_letter_exchange):
            async with self._connection.channel() as channel:
                await channel.exchange_delete(name)
        await self._connection.close()


# -- part 1: relay throughput ------------------------------------------------------------------


async def _fill(engine: AsyncEngine, events: int, subjects: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": "evt_" + uuid.uuid4().hex,
            "type": "stock.changed",
            "source": "bench",
            "subject": f"stk_{n % subjects:032x}",
            "sequence": n // subjects + 1,
            "time": now,
            "data": {"product_id": f"prd_{n % subjects:032x}", "available": n},
        }
        for n in range(events)
    ]
    async with engine.begin() as conn:
        await conn.execute(outbox_table.delete())
        for start in range(0, len(rows), 5000):
            await conn.execute(outbox_table.insert(), rows[start : start + 5000])


async def relay_throughput(
    url: str, topology: Topology, folder: Path, events: int, shapes: Sequence[tuple[str, int]]
) -> list[ThroughputRow]:
    """Seconds for the relay to publish ``events`` events, per shape (name, subjects)."""
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'relay.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    rows = []
    try:
        async with Sink(url, topology) as sink:
            for shape, subjects in shapes:
                count = events if subjects > 1 else min(events, 2000)
                await _fill(engine, count, subjects)
                relay = OutboxRelay(engine, url, topology, poll_interval_s=0.01)
                await relay.publisher.connect()  # connecting is not part of the figure
                started = time.perf_counter()
                task = asyncio.ensure_future(relay.run())

                async def done(
                    relay: OutboxRelay = relay, count: int = count, task: Any = task
                ) -> bool:
                    return bool(relay.stats.published >= count or task.done())

                await _poll(done, 0.005)
                seconds = time.perf_counter() - started
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                assert await outbox.lag(engine) == 0, "the relay did not publish everything"
                rows.append(ThroughputRow(shape, count, subjects, seconds))
                await sink.purge()
    finally:
        await engine.dispose()
    return rows


# -- part 2: lag under a checkout load ---------------------------------------------------------


async def lag_under_load(
    url: str, topology: Topology, folder: Path, orders: int, concurrency: int, num_cpus: int
) -> LoadResult:
    """Checkouts against a marketplace whose relay publishes as they commit."""
    from actors.directory import RELAY  # Ray only here
    from actors.protocols import EventRelayApi
    from actors.runtime import Runtime
    from marketplace.config import Settings
    from marketplace.domain.catalog import ProductDraft
    from marketplace.domain.orders import OrderStatus
    from marketplace.domain.users import Principal, Role

    settings = Settings(
        database_url=f"sqlite:///{folder / 'market.db'}",
        namespace="bench" + uuid.uuid4().hex[:8],
        amqp_url=url,
        events_exchange=topology.events_exchange,
        inbound_exchange=topology.inbound_exchange,
        inbound_queue=topology.inbound_queue,
        event_archive=topology.archive,
        ray_num_cpus=num_cpus,
        actor_num_cpus=0.01,
    )
    async with Sink(url, topology):
        runtime = Runtime(settings)
        client = await runtime.start()
        try:
            relay = client.directory.at(RELAY, 0)
            seller = await client.register(
                f"seller-{uuid.uuid4().hex[:8]}@bench.local", "password123", "Seller", Role.SELLER
            )
            products = [
                await client.create_product(
                    Principal(id=seller.id, role=Role.SELLER),
                    ProductDraft(name=f"P{i}", description="", category="bench", price_cents=999),
                    1_000_000,
                )
                for i in range(20)
            ]
            buyers = [
                await client.register(
                    f"buyer-{uuid.uuid4().hex[:8]}@bench.local", "password123", "Buyer", Role.BUYER
                )
                for _ in range(8)
            ]

            async def drained() -> bool:
                return not (await relay.call(EventRelayApi.stats))["lag"]

            await _poll(drained, 0.1)  # start from an empty outbox
            before_events = await _count_events(client.engine)
            before_published = (await relay.call(EventRelayApi.stats))["published"]

            gate = asyncio.Semaphore(concurrency)

            async def checkout(i: int) -> Any:
                async with gate:
                    return await client.place_order(
                        buyers[i % len(buyers)].id,
                        f"bench-{i}",
                        items=[{"product_id": products[i % len(products)].id, "quantity": 1}],
                    )

            samples: list[int] = []
            started = time.perf_counter()
            load = asyncio.ensure_future(asyncio.gather(*(checkout(i) for i in range(orders))))
            while not load.done():
                samples.append((await relay.call(EventRelayApi.stats))["lag"])
                await asyncio.sleep(0.1)
            placed = await load
            seconds = time.perf_counter() - started
            drain_started = time.perf_counter()
            await _poll(drained, 0.02)
            drain = time.perf_counter() - drain_started
            stats = await relay.call(EventRelayApi.stats)
            return LoadResult(
                orders=orders,
                confirmed=sum(1 for o in placed if o.status is OrderStatus.CONFIRMED),
                seconds=seconds,
                events=await _count_events(client.engine) - before_events,
                published=stats["published"] - before_published,
                lag_samples=samples,
                drain_seconds=drain,
            )
        finally:
            await runtime.stop()


async def _poll(
    condition: Callable[[], Awaitable[bool]], every: float, limit_s: float = 600
) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(every)
    raise TimeoutError(f"gave up after {limit_s:.0f} s")


async def _count_events(engine: AsyncEngine) -> int:
    from sqlalchemy import func, select

    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox_table)) or 0)


# -- the report --------------------------------------------------------------------------------


def _throughput_table(rows: list[ThroughputRow]) -> Table:
    table = Table(title="Relay throughput (publisher confirms, persistent, mandatory)")
    for column in ("shape", "subjects", "events", "seconds", "events/s"):
        table.add_column(column, justify="left" if column == "shape" else "right")
    for row in rows:
        table.add_row(
            row.shape,
            f"{row.subjects:,}",
            f"{row.events:,}",
            f"{row.seconds:.2f}",
            f"{row.per_second:,.0f}",
        )
    return table


def _load_table(result: LoadResult, concurrency: int) -> Table:
    table = Table(title=f"Outbox lag under a checkout load (concurrency {concurrency})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    samples = result.lag_samples or [0]
    ordered = sorted(samples)
    figures = [
        ("checkouts (confirmed)", f"{result.orders:,} ({result.confirmed:,})"),
        ("checkouts/s", f"{result.checkouts_per_second:,.1f}"),
        ("events written", f"{result.events:,}"),
        ("events written/s", f"{result.events / result.seconds:,.0f}"),
        ("events published", f"{result.published:,}"),
        ("lag samples (every 100 ms)", f"{len(samples):,}"),
        ("lag mean", f"{statistics.fmean(samples):,.1f}"),
        ("lag p50", f"{nearest_rank(ordered, 0.50):,}"),
        ("lag p99", f"{nearest_rank(ordered, 0.99):,}"),
        ("lag max", f"{max(samples):,}"),
        ("drain after the load (s)", f"{result.drain_seconds:.2f}"),
    ]
    for name, value in figures:
        table.add_row(name, value)
    return table


async def run(args: argparse.Namespace) -> None:
    """Both parts, one table each."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    # No archive: the bench binds its own sink, and a second queue per event would change
    # the figures it compares with earlier runs.
    topology = Topology(f"{prefix}.events", f"{prefix}.inbound", f"{prefix}.inbound", archive=False)
    shapes = [
        (f"many subjects ({args.events // 10:,} x 10)", max(args.events // 10, 1)),
        ("few subjects (8)", 8),
        ("one subject (sequential)", 1),
    ]
    with tempfile.TemporaryDirectory(prefix="marketplace-bench-") as folder:
        rows = await relay_throughput(args.amqp_url, topology, Path(folder), args.events, shapes)
        console.print(_throughput_table(rows))
        if not args.skip_load:
            result = await lag_under_load(
                args.amqp_url,
                topology,
                Path(folder),
                args.orders,
                args.concurrency,
                args.num_cpus,
            )
            console.print(_load_table(result, args.concurrency))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m marketplace.bench.relay``."""
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.bench.relay",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("MARKETPLACE_AMQP_URL") or DEFAULT_AMQP_URL
    )
    parser.add_argument("--events", type=int, default=20_000, help="part 1: events per shape")
    parser.add_argument("--orders", type=int, default=400, help="part 2: checkouts")
    parser.add_argument("--concurrency", type=int, default=16, help="part 2: in flight")
    parser.add_argument("--num-cpus", type=int, default=2, help="part 2: Ray CPUs")
    parser.add_argument("--skip-load", action="store_true", help="part 1 only (no Ray)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
