"""Checkout throughput and latency, ``sync`` against ``none`` durability, in one process.

    python -m marketplace.bench.checkout [--orders 400 --concurrency 32 --products 40]

For each durability mode (``sync`` first, then ``none``) the benchmark starts a fresh marketplace
on the same Ray (its own actor namespace and its own SQLite file in a temporary folder), lists
``--products`` products with far more stock than the run can sell, registers a few buyers, runs
a short warm-up, then ``--orders`` checkouts through ``MarketplaceClient.place_order`` with at most
``--concurrency`` in flight. It reports checkouts per second, p50 and p99 latency, how many orders
were confirmed (all of them, with this much stock and the approving test card) and the verdict of
the invariant audit, as a table with a ``none/sync`` ratio row, then a second table of CPU
milliseconds per checkout in each kind of process (read from /proc before and after the measured
run, so it shows where a checkout's cost goes), then how many actor calls a checkout makes, how
many Ray calls carry them (``actors.batching``), and what an empty Ray call costs in CPU in the
same run: their product is the floor that Ray's per-call cost puts under a checkout on this
machine. ``--json PATH`` also writes the figures. Ray is
started here with ``--num-cpus`` (2) and shut down at the end, unless ``RAY_ADDRESS`` names a
cluster to join, which is then left running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from actors.client import MarketplaceClient
from actors.directory import INVENTORY, ORDERS
from actors.protocols import InventoryPartitionApi, OrderCoordinatorApi
from actors.runtime import Runtime, init_ray
from marketplace.bench.cpu import CpuMeter, meter_for, per_operation_ms
from marketplace.bench.stats import percentile, rate, ratio, report_console
from marketplace.config import Durability, Settings
from marketplace.domain.catalog import ProductDraft
from marketplace.domain.orders import OrderStatus
from marketplace.domain.users import Principal, Role

CARD = "tok_visa"
STOCK_PER_PRODUCT = 1_000_000
MAX_LINES = 3
MAX_QUANTITY = 2


@dataclass(frozen=True)
class BenchConfig:
    """What one run does."""

    orders: int = 400
    concurrency: int = 32
    products: int = 40
    buyers: int = 16
    warmup: int = 32
    seed: int = 7
    num_cpus: int = 2
    catalog_shards: int = 2
    inventory_partitions: int = 2
    order_coordinators: int = 2
    payment_processors: int = 1

    def settings(self, database: Path, *, namespace: str, durability: Durability) -> Settings:
        """A marketplace with these actor counts on the SQLite file ``database``."""
        return Settings(
            database_url=f"sqlite:///{database}",
            namespace=namespace,
            durability=durability,
            catalog_shards=self.catalog_shards,
            inventory_partitions=self.inventory_partitions,
            order_coordinators=self.order_coordinators,
            payment_processors=self.payment_processors,
            ray_num_cpus=self.num_cpus,
            actor_num_cpus=0.01,
        )


@dataclass(frozen=True)
class ModeResult:
    """The figures of one durability mode."""

    durability: str
    orders: int
    confirmed: int
    errors: int
    seconds: float
    checkouts_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    audit_ok: bool
    audit_summary: str
    first_error: str | None = None
    cpu_ms: dict[str, float] = field(default_factory=dict)
    calls_per_checkout: float = float("nan")
    ray_calls_per_checkout: float = float("nan")
    empty_call_ms: float = float("nan")


def plan_orders(
    rng: random.Random, count: int, product_ids: Sequence[str], buyer_ids: Sequence[str]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """``count`` checkouts: a buyer and 1 to 3 distinct products, 1 or 2 of each."""
    plans = []
    for _ in range(count):
        lines = rng.randint(1, min(MAX_LINES, len(product_ids)))
        picks = rng.sample(list(product_ids), lines)
        items = [{"product_id": p, "quantity": rng.randint(1, MAX_QUANTITY)} for p in picks]
        plans.append((rng.choice(list(buyer_ids)), items))
    return plans


async def seed(
    client: MarketplaceClient, config: BenchConfig, tag: str
) -> tuple[list[str], list[str]]:
    """List the products (with plenty of stock) and register the buyers; returns their ids."""
    seller = await client.register(
        f"seller-{tag}@bench.test", "bench-password", "Bench Seller", Role.SELLER
    )
    principal = Principal(id=seller.id, role=seller.role)
    products = await asyncio.gather(
        *(
            client.create_product(
                principal,
                ProductDraft(
                    name=f"Bench product {i}",
                    description="listed by the checkout benchmark",
                    category=("kitchen", "books", "garden", "toys")[i % 4],
                    price_cents=100 + 37 * i,
                ),
                initial_stock=STOCK_PER_PRODUCT,
            )
            for i in range(config.products)
        )
    )
    buyers = await asyncio.gather(
        *(
            client.register(
                f"buyer{i}-{tag}@bench.test", "bench-password", f"Buyer {i}", Role.BUYER
            )
            for i in range(config.buyers)
        )
    )
    return [p.id for p in products], [b.id for b in buyers]


async def run_checkouts(
    client: MarketplaceClient,
    plans: Sequence[tuple[str, list[dict[str, Any]]]],
    concurrency: int,
    key_prefix: str,
) -> tuple[list[float], int, list[str], float]:
    """Place every planned order, ``concurrency`` at a time.

    Returns (latencies in seconds, confirmed, errors, wall-clock seconds).
    """
    latencies: list[float] = []
    errors: list[str] = []
    confirmed = 0
    next_index = 0

    async def worker() -> None:
        nonlocal confirmed, next_index
        while next_index < len(plans):
            index = next_index
            next_index += 1
            buyer_id, items = plans[index]
            started = time.perf_counter()
            try:
                order = await client.place_order(
                    buyer_id, f"{key_prefix}-{index}", items=items, card_token=CARD
                )
            except Exception as exc:
                errors.append(repr(exc))
                continue
            latencies.append(time.perf_counter() - started)
            if order.status is OrderStatus.CONFIRMED:
                confirmed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(plans))))))
    return latencies, confirmed, errors, time.perf_counter() - started


async def bench_mode(
    durability: Durability, config: BenchConfig, workdir: Path, console: Console
) -> ModeResult:
    """Start a fresh marketplace with ``durability``, measure it, audit it, stop it."""
    tag = f"{durability.value}-{uuid.uuid4().hex[:8]}"
    settings = config.settings(
        workdir / f"bench-{durability.value}.db", namespace=f"bench-{tag}", durability=durability
    )
    runtime = Runtime(settings)
    console.print(f"[bold]{durability.value}[/]: starting a marketplace ({settings.namespace})")
    client = await runtime.start()
    try:
        product_ids, buyer_ids = await seed(client, config, tag)
        rng = random.Random(config.seed)
        warmup = plan_orders(rng, config.warmup, product_ids, buyer_ids)
        plans = plan_orders(rng, config.orders, product_ids, buyer_ids)
        console.print(
            f"[bold]{durability.value}[/]: {len(product_ids)} products, {len(buyer_ids)} buyers; "
            f"warm-up {len(warmup)}, then {len(plans)} checkouts at concurrency "
            f"{config.concurrency}"
        )
        await run_checkouts(client, warmup, config.concurrency, f"warmup-{tag}")
        meter = meter_for(await client.ready())
        calls_before = await batch_counts(client)
        cpu_before = meter.sample()
        latencies, confirmed, errors, seconds = await run_checkouts(
            client, plans, config.concurrency, f"bench-{tag}"
        )
        cpu_ms = per_operation_ms(cpu_before, meter.sample(), len(plans))
        calls_after = await batch_counts(client)
        empty_call_ms = await empty_call_cpu_ms(client, meter, config.concurrency)
        report = await client.audit()
    finally:
        await runtime.stop()
    latencies.sort()
    return ModeResult(
        durability=durability.value,
        orders=len(plans),
        confirmed=confirmed,
        errors=len(errors),
        seconds=seconds,
        checkouts_per_s=rate(len(latencies), seconds),
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        mean_ms=statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        audit_ok=report.ok,
        audit_summary=report.summary(),
        first_error=errors[0] if errors else None,
        cpu_ms=cpu_ms,
        calls_per_checkout=(calls_after[0] - calls_before[0]) / len(plans),
        ray_calls_per_checkout=(calls_after[1] - calls_before[1]) / len(plans),
        empty_call_ms=empty_call_ms,
    )


async def batch_counts(client: MarketplaceClient) -> tuple[int, int]:
    """Actor calls made through call batchers so far, and the Ray calls that carried them:
    the client's own (checkouts to the coordinators) and every coordinator's (the saga)."""
    directory = client.directory
    parts = [directory.batch_counts()] + await asyncio.gather(
        *(c.call(OrderCoordinatorApi.batch_counts) for c in directory.every(ORDERS))
    )
    pairs = [pair for part in parts for pair in part.values()]
    return sum(calls for calls, _ in pairs), sum(batches for _, batches in pairs)


async def empty_call_cpu_ms(client: MarketplaceClient, meter: CpuMeter, concurrency: int) -> float:
    """CPU ms, over every metered process, of one Ray call that does nothing (``run_batch([])``
    on an inventory partition), made ``concurrency`` at a time: the floor under each Ray call
    a checkout makes."""
    target = client.directory.at(INVENTORY, 0)
    calls = 50 * concurrency
    before = meter.sample()
    for _ in range(calls // concurrency):
        await asyncio.gather(
            *(target.call(InventoryPartitionApi.run_batch, []) for _ in range(concurrency))
        )
    return sum(per_operation_ms(before, meter.sample(), calls).values())


def ratios(results: dict[str, ModeResult]) -> dict[str, float] | None:
    """``none`` over ``sync`` for throughput and latencies, when both ran."""
    sync, none = results.get(Durability.SYNC.value), results.get(Durability.NONE.value)
    if sync is None or none is None:
        return None

    def over(a: float, b: float) -> float:
        value = ratio(a, b)
        return float("nan") if value is None else value

    return {
        "checkouts_per_s": over(none.checkouts_per_s, sync.checkouts_per_s),
        "p50_ms": over(none.p50_ms, sync.p50_ms),
        "p99_ms": over(none.p99_ms, sync.p99_ms),
    }


def render(results: dict[str, ModeResult], config: BenchConfig) -> Table:
    """The results as a table, with a ``none/sync`` row when both modes ran."""
    table = Table(
        title=(
            f"Checkout benchmark: {config.orders} orders, concurrency {config.concurrency}, "
            f"{config.products} products"
        )
    )
    for name in ("durability", "orders", "confirmed", "errors", "seconds"):
        table.add_column(name, justify="left" if name == "durability" else "right")
    for name in ("checkouts/s", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right", style="bold")
    table.add_column("audit", justify="center")
    rows = list(results.values())
    for number, r in enumerate(rows):
        table.add_row(
            r.durability,
            str(r.orders),
            str(r.confirmed),
            str(r.errors),
            f"{r.seconds:.2f}",
            f"{r.checkouts_per_s:.1f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            "ok" if r.audit_ok else "[red]FAILED[/]",
            end_section=number == len(rows) - 1,
        )
    ratio = ratios(results)
    if ratio is not None:
        table.add_row(
            "none/sync",
            "",
            "",
            "",
            "",
            f"{ratio['checkouts_per_s']:.2f}x",
            f"{ratio['p50_ms']:.2f}x",
            f"{ratio['p99_ms']:.2f}x",
            "",
        )
    return table


async def bench(
    config: BenchConfig, modes: Sequence[Durability], console: Console
) -> dict[str, Any]:
    """Run every mode on one Ray; returns the figures as plain data."""
    # Start Ray here (or join RAY_ADDRESS) so that both modes share it; each Runtime then finds
    # it initialized and leaves it alone.
    started_ray, connected_ray = init_ray(Settings(namespace="bench", ray_num_cpus=config.num_cpus))
    results: dict[str, ModeResult] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="marketplace-bench-") as folder:
            for durability in modes:
                results[durability.value] = await bench_mode(
                    durability, config, Path(folder), console
                )
    finally:
        if started_ray or connected_ray:
            # A Runtime that owns (or joined) Ray and no marketplace: stopping it shuts Ray
            # down, or only disconnects from a joined cluster.
            await Runtime(started_ray=started_ray, connected_ray=connected_ray).stop()
    return {
        "config": asdict(config),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "ray": "started here" if started_ray else "joined an existing cluster",
        "modes": {name: asdict(result) for name, result in results.items()},
        "ratio_none_over_sync": ratios(results),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.bench.checkout",
        description="Checkouts per second and latency, sync against none durability.",
    )
    parser.add_argument("--orders", type=int, default=defaults.orders, help="measured checkouts")
    parser.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="checkouts in flight"
    )
    parser.add_argument("--products", type=int, default=defaults.products, help="products listed")
    parser.add_argument("--buyers", type=int, default=defaults.buyers, help="buyers registered")
    parser.add_argument(
        "--warmup", type=int, default=defaults.warmup, help="unmeasured checkouts first"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the order mix")
    parser.add_argument(
        "--num-cpus", type=int, default=defaults.num_cpus, help="CPUs of the Ray started here"
    )
    parser.add_argument(
        "--modes",
        default="sync,none",
        help="durability modes to run, in order, comma-separated (sync, async, none)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    for name in ("orders", "concurrency", "products", "buyers", "num_cpus"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    try:
        args.modes = [Durability(mode.strip()) for mode in args.modes.split(",") if mode.strip()]
    except ValueError as exc:
        parser.error(f"--modes: {exc}")
    if not args.modes:
        parser.error("--modes names no mode")
    return args


def render_cpu(results: dict[str, ModeResult]) -> Table:
    """CPU milliseconds per checkout by process kind, one column per mode."""
    table = Table(title="CPU ms per checkout, by process (this host)")
    table.add_column("process")
    for r in results.values():
        table.add_column(r.durability, justify="right")
    labels = list(dict.fromkeys(label for r in results.values() for label in r.cpu_ms))
    for label in labels:
        table.add_row(label, *(f"{r.cpu_ms.get(label, 0.0):.2f}" for r in results.values()))
    table.add_row(
        "total",
        *(f"{sum(r.cpu_ms.values()):.2f}" for r in results.values()),
        style="bold",
        end_section=True,
    )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if an audit failed or an order was not confirmed."""
    args = parse_args(argv)
    config = BenchConfig(
        orders=args.orders,
        concurrency=args.concurrency,
        products=args.products,
        buyers=args.buyers,
        warmup=args.warmup,
        seed=args.seed,
        num_cpus=args.num_cpus,
    )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    console = report_console(110)
    figures = asyncio.run(bench(config, args.modes, console))
    results = [ModeResult(**data) for data in figures["modes"].values()]
    console.print(render({r.durability: r for r in results}, config))
    if any(r.cpu_ms for r in results):
        console.print(render_cpu({r.durability: r for r in results}))
    failed = False
    for r in results:
        console.print(
            f"{r.durability}: {r.confirmed} of {r.orders} orders confirmed, {r.errors} errors; "
            f"audit {'ok' if r.audit_ok else 'FAILED'}"
        )
        if r.first_error:
            console.print(f"  first error: {r.first_error}", markup=False)
        if not r.audit_ok:
            console.print(r.audit_summary, markup=False)
        if r.cpu_ms and r.ray_calls_per_checkout == r.ray_calls_per_checkout:  # not NaN
            floor = r.ray_calls_per_checkout * r.empty_call_ms
            console.print(
                f"{r.durability}: {r.calls_per_checkout:.1f} actor calls per checkout, carried by "
                f"{r.ray_calls_per_checkout:.1f} Ray calls; an empty Ray call costs "
                f"{r.empty_call_ms:.2f} ms of CPU here, so {floor:.1f} of the "
                f"{sum(r.cpu_ms.values()):.1f} ms per checkout are Ray's own cost per call",
                highlight=False,
            )
        failed = failed or not r.audit_ok or r.confirmed != r.orders
    if figures["ratio_none_over_sync"] is not None:
        ratio = figures["ratio_none_over_sync"]
        console.print(
            f"none/sync: {ratio['checkouts_per_s']:.2f}x checkouts/s, "
            f"{ratio['p50_ms']:.2f}x p50, {ratio['p99_ms']:.2f}x p99"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        console.print(f"figures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
