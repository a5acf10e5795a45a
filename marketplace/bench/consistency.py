"""Product reads and writes per catalog consistency mode and number of read replicas.

    python -m marketplace.bench.consistency [--replicas 0 1 2 --duration 3 --readers 16]

For each replica count (one marketplace each: ``sync`` durability, SQLite in a temporary folder,
one catalog shard) and each mode (strong, session, eventual: the reading process's choice,
``actors/catalog_reads.py``; with no replica also ``strong, owner``: a call to the shard for every
read, without the leased copies), ``--readers`` concurrent readers read random products of
``--products`` for ``--duration`` seconds through ``MarketplaceClient.get_product`` with a
session, as the gateway's route does (each reader keeps its own session token in ``session``),
while one writer reprices them one after another (``PATCH``, carrying a session too); then
again with each reader pausing ``READ_PACE_S`` between reads, to time the PATCHes (readers flat
out saturate the benchmark's own process, whose PATCHes then time its queue: shown as "busy").

It prints per case: reads per second and read p99, each as a ratio to today's path (strong, no
replica) measured in the same run; PATCH p50 and p99; and the stale-read rate: reads that
answered a version older than the newest write acknowledged when the read began (what
``marketplace_stale_reads`` approximates at the replicas). Client-level: no HTTP, so no ratio to
``/v1/health`` here (``marketplace.bench.gateway`` measures the route against health). Ray is
started here with ``--num-cpus`` (2) and shut down at the end, unless ``RAY_ADDRESS`` names a
cluster to join.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actors.client import MarketplaceClient
from actors.directory import Directory
from actors.runtime import Runtime, init_ray
from marketplace.bench.stats import percentile, rate, report_console
from marketplace.config import Consistency, Durability, Settings
from marketplace.domain.catalog import ProductDraft, ProductPatch
from marketplace.domain.session_token import CatalogSession
from marketplace.domain.users import Principal, Role

MODES = (Consistency.STRONG, Consistency.SESSION, Consistency.EVENTUAL)
# Strong reads that ask the shard every time, without leased copies: what the leases save.
OWNER = "strong, owner"
BASELINE = (0, str(Consistency.STRONG))
# Between one reader's reads while PATCHes are timed: 16 readers then ask about 3,000 reads/s.
READ_PACE_S = 0.005


@dataclass
class Case:
    """What one (replicas, mode) run measured."""

    reads: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)  # beside paced reads
    writes_busy: list[float] = field(default_factory=list)  # beside reads flat out
    stale: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Load:
    """The load of every case."""

    duration_s: float
    readers: int
    products: int
    delay_ms: float


async def bench(replica_counts: list[int], load: Load, num_cpus: int) -> None:
    """Start Ray, then a marketplace per replica count; measure every mode; print the table."""
    console = report_console(110)
    started, connected = init_ray(Settings(namespace="bench", ray_num_cpus=num_cpus))
    cases: dict[tuple[int, str], Case] = {}
    try:
        for replicas in replica_counts:
            with tempfile.TemporaryDirectory(prefix="marketplace-bench-") as folder:
                settings = Settings(
                    database_url=f"sqlite:///{Path(folder) / 'consistency.db'}",
                    namespace=f"bench-consistency-{uuid.uuid4().hex[:8]}",
                    durability=Durability.SYNC,
                    catalog_replicas=replicas,
                    replication_delay_ms=load.delay_ms,
                    actor_num_cpus=0.01,
                )
                runtime = Runtime(settings)
                console.print(f"starting a marketplace with {replicas} replica(s)")
                client = await runtime.start()
                try:
                    if replicas == 0:
                        cases[0, OWNER] = await measure(runtime, client, None, load)
                    for mode in MODES:
                        cases[replicas, str(mode)] = await measure(runtime, client, mode, load)
                        console.print(f"  {mode}: done")
                finally:
                    await runtime.stop()
    finally:
        if started or connected:
            await Runtime(started_ray=started, connected_ray=connected).stop()
    print_table(cases, load, console)


async def measure(
    runtime: Runtime, writer: MarketplaceClient, mode: Consistency | None, load: Load
) -> Case:
    """One case: readers and a writer on a fresh set of products, read in ``mode`` (None: by
    a call to the owning shard every time)."""
    seller = await writer.register(
        f"seller-{uuid.uuid4().hex[:8]}@bench.test", "bench-password", "Bench", Role.SELLER
    )
    principal = Principal(id=seller.id, role=seller.role)
    draft = ProductDraft(
        name="Read", description="read and repriced", category="books", price_cents=100
    )
    products = [(await writer.create_product(principal, draft)).id for _ in range(load.products)]
    settings = runtime.settings.model_copy(
        update={"catalog_consistency": mode or Consistency.STRONG}
    )
    reader = MarketplaceClient(Directory(settings), writer.engine)
    acked: dict[str, int] = dict.fromkeys(products, 1)  # newest version answered to the writer
    case = Case()
    await asyncio.sleep(0.5)  # the replicas have the listings
    # Reads as fast as they go (reads/s, p99, stale reads), then paced (PATCH latency): readers
    # flat out saturate this process, whose writes would then time its queue, not the write.
    for pace_s in (0.0, READ_PACE_S):
        stop_at = time.monotonic() + load.duration_s
        readers = [
            _read_loop(reader, mode, products, acked, case, stop_at, pace_s)
            for _ in range(load.readers)
        ]
        writes: list[float] = []
        began = time.monotonic()
        await asyncio.gather(
            _write_loop(reader, principal, products, acked, writes, stop_at), *readers
        )
        if pace_s == 0:
            case.seconds = time.monotonic() - began
            case.writes_busy = writes
        else:
            case.writes = writes
    await reader.close()
    return case


async def _read_loop(
    reader: MarketplaceClient,
    mode: Consistency | None,
    products: list[str],
    acked: dict[str, int],
    case: Case,
    stop_at: float,
    pace_s: float,
) -> None:
    """Random product reads until ``stop_at``; recorded in ``case`` only when not paced."""
    session = CatalogSession()
    while time.monotonic() < stop_at:
        product_id = random.choice(products)
        newest = acked[product_id]
        start = time.perf_counter()
        if mode is None:
            product = (await reader.get_products([product_id]))[product_id]
        else:
            product = await reader.get_product(
                product_id,
                session=session if mode is Consistency.SESSION else CatalogSession(),
            )
        if not pace_s:
            case.reads.append(time.perf_counter() - start)
            case.stale += product.version < newest
        # A read answered from a held copy never suspends: without a yield the readers would
        # starve the loop's polls (and the writes that wait on them), as no gateway does.
        await asyncio.sleep(pace_s)


async def _write_loop(
    writer: MarketplaceClient,
    principal: Principal,
    products: list[str],
    acked: dict[str, int],
    writes: list[float],
    stop_at: float,
) -> None:
    """Reprice random products one after another until ``stop_at``; each write's seconds."""
    session = CatalogSession()
    price = 100
    while time.monotonic() < stop_at:
        product_id = random.choice(products)
        price += 1
        start = time.perf_counter()
        product = await writer.update_product(
            principal, product_id, ProductPatch(price_cents=price), session=session
        )
        writes.append(time.perf_counter() - start)
        acked[product_id] = max(acked[product_id], product.version)
        await asyncio.sleep(0.005)


def print_table(cases: dict[tuple[int, str], Case], load: Load, console: Console) -> None:
    """Per case: read rate and p99 against the baseline, PATCH p50/p99, stale-read rate."""
    table = Table(
        title=f"Product reads ({load.readers} readers) and PATCHes, client-level, "
        f"replication delay {load.delay_ms:g} ms"
    )
    columns = ("replicas", "mode", "reads/s", "x base", "read p99 ms", "x base")
    patches = ("PATCH p50 ms", "PATCH p99 ms", "PATCH p50 busy")
    for column in (*columns, *patches, "stale reads"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    base = cases.get(BASELINE)
    base_rps = rate(len(base.reads), base.seconds) if base else 0.0
    base_p99 = percentile(sorted(base.reads), 0.99) if base else 0.0
    for (replicas, mode), case in cases.items():
        reads = sorted(case.reads)
        writes = sorted(case.writes)
        rps = rate(len(reads), case.seconds)
        p99 = percentile(reads, 0.99)
        table.add_row(
            str(replicas),
            mode,
            f"{rps:,.0f}",
            f"{rps / base_rps:.2f}" if base_rps else "-",
            f"{p99 * 1000:.2f}",
            f"{p99 / base_p99:.2f}" if base_p99 else "-",
            f"{percentile(writes, 0.5) * 1000:.1f}",
            f"{percentile(writes, 0.99) * 1000:.1f}",
            f"{percentile(sorted(case.writes_busy), 0.5) * 1000:.1f}",
            f"{case.stale / max(len(reads), 1):.2%}",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per case")
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="replication delay")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args(argv)
    load = Load(args.duration, args.readers, args.products, args.delay_ms)
    asyncio.run(bench(args.replicas, load, args.num_cpus))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
