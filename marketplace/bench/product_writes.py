"""What a product write costs under the catalog's read leases, by how its copies are held.

    python -m marketplace.bench.product_writes [--writes 40 --rounds 3 --lease-s 0.25]

A product write (``PATCH``: ``MarketplaceClient.update_product``) answers only once no copy of
the product handed out before it can still be read (actors/leases.py). The benchmark starts one
marketplace (``sync`` durability, SQLite in a temporary folder) and times ``--writes``
sequential reprices in each of three cases, alternating for ``--rounds`` rounds:

- ``no copy out``: nobody read the product within a lease, so the write answers at once;
- ``held, dropped``: a second client (another process's reads, as a gateway replica's) read the
  product just before; it polls the shard, which tells it to drop the copy and answers on its
  word (actors/lessees.py);
- ``held, waited out``: the product was read just before by a caller that did not say who it
  is, so the shard can only wait for the lease to end: what every write cost before lessees
  were told (the baseline of this run).

It prints p50 and p99 per case, their ratio to the baseline, and how the shard's writes met
the leases (``free``, ``acked``, ``waited``), which shows each case took the path it names. Ray
is started here with ``--num-cpus`` (2) and shut down at the end, unless ``RAY_ADDRESS`` names
a cluster to join.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actors.client import MarketplaceClient
from actors.directory import CATALOG
from actors.protocols import CatalogShardApi
from actors.runtime import Runtime, init_ray
from marketplace.bench.stats import percentile, report_console
from marketplace.config import Durability, Settings
from marketplace.domain.catalog import ProductDraft, ProductPatch
from marketplace.domain.users import Principal, Role

CASES = ("no copy out", "held, dropped", "held, waited out")
BASELINE = "held, waited out"


async def bench(writes: int, rounds: int, lease_s: float, num_cpus: int) -> None:
    """Start Ray and a marketplace, time the writes of every case, print the tables."""
    console = report_console(100)
    started, connected = init_ray(Settings(namespace="bench", ray_num_cpus=num_cpus))
    try:
        with tempfile.TemporaryDirectory(prefix="marketplace-bench-") as folder:
            settings = Settings(
                database_url=f"sqlite:///{Path(folder) / 'writes.db'}",
                namespace=f"bench-writes-{uuid.uuid4().hex[:8]}",
                durability=Durability.SYNC,
                product_lease_s=lease_s,
                actor_num_cpus=0.01,
            )
            runtime = Runtime(settings)
            console.print(f"starting a marketplace ({settings.namespace}), lease {lease_s} s")
            client = await runtime.start()
            try:
                print_table(*await measure(client, writes, rounds), console)
            finally:
                await runtime.stop()
    finally:
        if started or connected:
            await Runtime(started_ray=started, connected_ray=connected).stop()


Timings = dict[str, list[float]]
Outcomes = dict[str, dict[str, int]]


async def measure(client: MarketplaceClient, writes: int, rounds: int) -> tuple[Timings, Outcomes]:
    """List a product, then alternate the cases' rounds: each write's seconds, and how the
    shard's writes met the leases, per case."""
    seller = await client.register(
        f"seller-{uuid.uuid4().hex[:8]}@bench.test", "bench-password", "Bench", Role.SELLER
    )
    principal = Principal(id=seller.id, role=seller.role)
    reader = MarketplaceClient(client.directory, client.engine)  # another process's copies
    product = (
        await client.create_product(
            principal,
            ProductDraft(name="Written", description="repriced", category="books", price_cents=1),
        )
    ).id
    shard = client.directory.route(CATALOG, product)

    async def before_write(case: str) -> None:
        if case == "held, dropped":
            await reader.get_product(product)
        elif case == "held, waited out":
            await shard.call(CatalogShardApi.lease_products, [product])  # no lessee named
        else:
            await asyncio.sleep(client.directory.settings.product_lease_s)  # copies end

    await reader.get_product(product)  # the reader polls the shard from now on
    timings: Timings = {case: [] for case in CASES}
    outcomes: Outcomes = {case: {} for case in CASES}
    price = 100
    for round_no in range(rounds):
        for case in CASES:
            before = await shard.call(CatalogShardApi.lease_outcomes)
            for _ in range(writes):
                await before_write(case)
                price += 1
                patch = ProductPatch(price_cents=price)
                timings[case].append(
                    await timed(partial(client.update_product, principal, product, patch))
                )
            after = await shard.call(CatalogShardApi.lease_outcomes)
            for name, count in after.items():
                outcomes[case][name] = outcomes[case].get(name, 0) + count - before.get(name, 0)
        print(f"round {round_no + 1}/{rounds} done", flush=True)
    return timings, outcomes


async def timed(write: Callable[[], Awaitable[object]]) -> float:
    """Seconds one write took to answer."""
    started = time.perf_counter()
    await write()
    return time.perf_counter() - started


def print_table(timings: Timings, outcomes: Outcomes, console: Console) -> None:
    """p50, p99 and their ratio to the baseline per case, with the writes' outcomes."""
    table = Table(title="Product writes (PATCH through MarketplaceClient), ms")
    for column in ("case", "writes", "p50 ms", "p99 ms", "p50 / waited out", "free/acked/waited"):
        table.add_column(column, justify="left" if column == "case" else "right")
    base = percentile(sorted(timings[BASELINE]), 0.5)
    for case in CASES:
        values = sorted(timings[case])
        p50 = percentile(values, 0.5)
        met = outcomes[case]
        table.add_row(
            case,
            str(len(values)),
            f"{p50 * 1000:.1f}",
            f"{percentile(values, 0.99) * 1000:.1f}",
            f"{p50 / base:.3f}x",
            f"{met.get('free', 0)}/{met.get('acked', 0)}/{met.get('waited', 0)}",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--writes", type=int, default=40, help="writes per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lease-s", type=float, default=Settings().product_lease_s)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args(argv)
    asyncio.run(bench(args.writes, args.rounds, args.lease_s, args.num_cpus))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
