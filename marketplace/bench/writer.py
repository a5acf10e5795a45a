"""What an actor's write costs, by how the writer commits it, in one process and one run.

    python -m marketplace.bench.writer [--writes 600 --concurrency 1,8,32 --rounds 3
                                            --database URL]

Each write is what an inventory partition commits when it reserves an order: two reservation
rows, two stock rows and two ``stock.changed`` events. For every concurrency (writes in flight)
three writers take turns on a fresh database:

- ``one by one``: each write's statements executed on their own, through SQLAlchemy's asyncio
  layer (aiosqlite on SQLite): the baseline, how writes were committed before merging;
- ``merged``: the writes queued during a commit merged into one statement per table;
- ``merged, own thread`` (SQLite only, what the actors use there): the same, with the whole
  transaction run in one trip to the writer's own thread instead of one trip per statement,
  its rows bound before it begins and executed by the SQLite driver itself.

It prints writes per second, CPU milliseconds per write (this process, threads included) and
commits, with each CPU figure as a ratio to the baseline at the same concurrency. The machine is
noisy: ``--rounds`` repeats everything, interleaved, and reports medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.bench.stats import rate
from marketplace.config import Durability
from marketplace.domain.events import DomainEvent, EventType
from marketplace.store.changes import Changes
from marketplace.store.engine import create_engine, sqlite_writer_engine
from marketplace.store.tables import metadata, reservations, stock_items
from marketplace.store.writer import FileLock, Writer

VARIANTS = ("one by one", "merged", "merged, own thread")


@dataclass(frozen=True)
class Figure:
    """One writer at one concurrency."""

    variant: str
    concurrency: int
    writes: int
    seconds: float
    cpu_s: float
    commits: int

    @property
    def per_second(self) -> float:
        return rate(self.writes, self.seconds)

    @property
    def cpu_ms_per_write(self) -> float:
        return 1000 * self.cpu_s / self.writes if self.writes else 0.0


RUN = uuid.uuid4().hex[:8]  # keeps ids of runs on one scratch database apart


def reservation_write(order: int) -> Changes:
    """The changes of one two-line reservation."""
    lines = [(f"prd_{RUN}_{(order + n) % 50}", n + 1) for n in range(2)]
    return (
        Changes()
        .upsert(
            reservations,
            [
                {
                    "order_id": f"ord_{RUN}_{order}",
                    "product_id": product,
                    "quantity": quantity,
                    "state": "held",
                    "route_key": order,
                }
                for product, quantity in lines
            ],
            ["order_id", "product_id"],
        )
        .upsert(
            stock_items,
            [
                {
                    "product_id": product,
                    "route_key": 1,
                    "stocked": 1_000_000,
                    "reserved": order,
                    "sold": 0,
                    "version": order,
                }
                for product, _ in lines
            ],
            ["product_id"],
        )
        .events(
            "marketplace/bench",
            [
                DomainEvent(
                    type=EventType.STOCK_CHANGED,
                    subject=f"stk_{RUN}_{order}_{n}",
                    sequence=1,
                    data={"product_id": product, "reserved": order},
                )
                for n, (product, _) in enumerate(lines)
            ],
        )
    )


async def measure(
    engine: AsyncEngine,
    direct: Engine | None,
    lock: FileLock | None,
    variant: str,
    concurrency: int,
    writes: int,
    first_order: int,
) -> Figure:
    """Run ``writes`` writes, ``concurrency`` at a time, through one writer."""
    writer = Writer(
        engine,
        Durability.SYNC,
        lock,
        direct=direct if variant == "merged, own thread" else None,
        merge=variant != "one by one",
    )
    todo = iter(range(first_order, first_order + writes))

    async def worker() -> None:
        for order in todo:
            await writer.write(reservation_write(order))

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    await writer.close()
    return Figure(
        variant,
        concurrency,
        writes,
        seconds,
        cpu_s,
        writer.commits,
    )


async def bench(
    url: str | None, writes: int, concurrencies: Sequence[int], rounds: int = 1
) -> list[Figure]:
    """Every variant at every concurrency, on one database, ``rounds`` times (medians)."""
    with tempfile.TemporaryDirectory(prefix="marketplace-bench-writer-") as folder:
        path = Path(folder) / "writer.db"
        engine = create_engine(url or f"sqlite:///{path}")
        direct = sqlite_writer_engine(engine)
        lock = FileLock(str(path) + ".writelock") if engine.dialect.name == "sqlite" else None
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        figures = []
        order = 0
        try:
            for _ in range(rounds):
                for concurrency in concurrencies:
                    for variant in VARIANTS:
                        if variant == "merged, own thread" and direct is None:
                            continue
                        figures.append(
                            await measure(engine, direct, lock, variant, concurrency, writes, order)
                        )
                        order += writes
        finally:
            await engine.dispose()
            if direct is not None:
                direct.dispose()
    return medians(figures)


def medians(figures: Sequence[Figure]) -> list[Figure]:
    """One figure per (concurrency, variant): the median seconds, CPU and commits."""
    groups: dict[tuple[int, str], list[Figure]] = {}
    for f in figures:
        groups.setdefault((f.concurrency, f.variant), []).append(f)
    return [
        Figure(
            variant,
            concurrency,
            runs[0].writes,
            statistics.median(f.seconds for f in runs),
            statistics.median(f.cpu_s for f in runs),
            round(statistics.median(f.commits for f in runs)),
        )
        for (concurrency, variant), runs in groups.items()
    ]


def render(figures: Sequence[Figure], database: str) -> Table:
    """The figures, with CPU per write as a ratio to the baseline at the same concurrency."""
    table = Table(title=f"Writer: one reservation per write, {database}")
    for name in ("in flight", "writer", "writes/s", "CPU ms/write", "CPU vs one by one", "commits"):
        table.add_column(name, justify="left" if name == "writer" else "right")
    baseline = {f.concurrency: f for f in figures if f.variant == "one by one"}
    for number, f in enumerate(figures):
        base = baseline.get(f.concurrency)
        ratio = f.cpu_ms_per_write / base.cpu_ms_per_write if base and base.cpu_s else 0.0
        following = figures[number + 1] if number + 1 < len(figures) else None
        last_of_level = following is None or following.concurrency != f.concurrency
        table.add_row(
            str(f.concurrency),
            f.variant,
            f"{f.per_second:.0f}",
            f"{f.cpu_ms_per_write:.3f}",
            f"{ratio:.2f}x" if f.variant != "one by one" else "",
            str(f.commits),
            end_section=last_of_level,
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.bench.writer",
        description="CPU per write and writes per second, by how the writer commits.",
    )
    parser.add_argument("--writes", type=int, default=600, help="writes per variant and level")
    parser.add_argument(
        "--concurrency", default="1,8,32", help="writes in flight, comma-separated levels"
    )
    parser.add_argument("--rounds", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument(
        "--database",
        default=None,
        help="a scratch database URL; its marketplace tables are created if missing and the "
        "rows written stay (default: a temporary SQLite file)",
    )
    args = parser.parse_args(argv)
    try:
        levels = [int(level) for level in args.concurrency.split(",") if level.strip()]
    except ValueError:
        parser.error("--concurrency takes whole numbers, e.g. 1,8,32")
    if not levels or min(levels) < 1 or args.writes < 1 or args.rounds < 1:
        parser.error("--writes, --rounds and every --concurrency level must be at least 1")
    figures = asyncio.run(bench(args.database, args.writes, levels, args.rounds))
    name = "temporary SQLite" if args.database is None else args.database.split(":", 1)[0]
    Console(width=110).print(render(figures, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
