"""The simulator's own cost, and what it drives through the client, against the benchmarks.

    python -m marketplace.bench.simulator [--rates 2000,5000,10000,20000 --orders 400 --rounds 2]

Part 1, the generator (no marketplace): how many operations per second the ``om`` workload
draws on one core, then the open loop against a target that answers at once (``NullTarget``)
at each of ``--rates``: achieved rate, how late operations started (p99 of latency from the
intended start, which against an instant target is the loop's own lag) and the share of a core
the process used. The highest rate it keeps is the most a single simulator process can offer.

Part 2, through the client (``--via client``): one marketplace on a local Ray (sync durability,
the actor counts of ``marketplace.bench.checkout``), then ``--rounds`` rounds of, one after the
other, ``bench.checkout``'s checkouts (``--orders`` at ``--concurrency``, straight to the
coordinators with the items) and the simulator's ``checkout`` preset in a closed loop of
``--concurrency`` agents (the same order mix, through the cart, as a shop does it) for as long
as the benchmark's round took. It prints checkouts per second of each and their ratio, per
round and as medians, and exits 1 if an operation failed or the audit did. Ray is
started here with ``--num-cpus`` (2) and shut down at the end, unless ``RAY_ADDRESS`` names a
cluster to join.

The HTTP side (``--via http`` against ``bench.gateway``) is ``marketplace.bench.sim_http``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actors.runtime import Runtime, init_ray
from marketplace.bench.checkout import BenchConfig, plan_orders, run_checkouts, seed
from marketplace.bench.stats import rate, ratio, report_console, times
from marketplace.config import Durability, Settings
from marketplace.sim.arrivals import poisson
from marketplace.sim.client_target import ClientTarget
from marketplace.sim.loops import NullTarget, percentile, run_open
from marketplace.sim.market import generate_market
from marketplace.sim.presets import preset
from marketplace.sim.seed import seed_market
from marketplace.sim.simulation import SimConfig, build_market, simulate
from marketplace.sim.workload import Workload


@dataclass(frozen=True)
class LoopFigure:
    """The open loop against the null target at one offered rate."""

    offered: float
    achieved: float
    p99_late_ms: float
    core_share: float


def generator_rate(draws: int) -> tuple[float, float]:
    """Operations per second of CPU and of wall time that the ``om`` workload draws."""
    workload = Workload(generate_market(7), preset("om"), random.Random(1))
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(draws):
        workload.next_op(i * 0.001)
    return draws / (time.process_time() - cpu), draws / (time.perf_counter() - wall)


async def null_loop(rate_per_s: float, seconds: float) -> LoopFigure:
    """The open loop at ``rate_per_s`` for ``seconds`` against ``NullTarget``."""
    market = generate_market(7)
    workload = Workload(market, preset("om"), random.Random(2))
    schedule = poisson(random.Random(3), rate_per_s, seconds)
    ops = list(workload.stream(schedule))  # drawn before, so this times the loop alone
    cpu = time.process_time()
    result = await run_open(NullTarget(), schedule, ops, duration=seconds)
    used = time.process_time() - cpu
    lateness = [r.latency for r in result.records if r.latency is not None]
    p99 = percentile(lateness, 99)
    return LoopFigure(
        offered=result.summary.offered_rate,
        achieved=result.summary.achieved_rate,
        p99_late_ms=(p99 or 0.0) * 1000,
        core_share=used / result.summary.elapsed,
    )


@dataclass(frozen=True)
class ClientRound:
    """One round of part 2: the benchmark's and the simulator's checkouts per second."""

    bench_per_s: float
    sim_per_s: float
    sim_ops_per_s: float
    sim_failed: int


async def client_rounds(config: BenchConfig, rounds: int, console: Console) -> list[ClientRound]:
    """Part 2 on one fresh marketplace; returns the rounds."""
    with tempfile.TemporaryDirectory(prefix="marketplace-bench-sim-") as folder:
        settings = config.settings(
            Path(folder) / "sim.db",
            namespace=f"bench-sim-{uuid.uuid4().hex[:8]}",
            durability=Durability.SYNC,
        )
        return await _client_rounds(config, settings, rounds, console)


async def _client_rounds(
    config: BenchConfig, settings: Settings, rounds: int, console: Console
) -> list[ClientRound]:
    runtime = Runtime(settings)
    client = await runtime.start()
    try:
        product_ids, buyer_ids = await seed(client, config, "sim")
        rng = random.Random(config.seed)
        sim = SimConfig(
            preset="checkout",
            agents=config.concurrency,
            think_time=0.0005,
            duration=1.0,
            seed=config.seed,
            products=config.products,
            buyers=200,  # agents wait for each other only when they draw the same buyer
            stock_min=1_000_000,
            stock_max=1_000_000,
        )
        market = build_market(sim)
        target = ClientTarget(client, await seed_market(client, market, write=False))
        warm = plan_orders(rng, config.warmup, product_ids, buyer_ids)
        await run_checkouts(client, warm, config.concurrency, "warm")
        results = []
        for index in range(rounds):
            plans = plan_orders(rng, config.orders, product_ids, buyer_ids)
            latencies, _, errors, seconds = await run_checkouts(
                client, plans, config.concurrency, f"round{index}"
            )
            bench_per_s = rate(len(latencies), seconds)
            this = SimConfig(**{**sim.__dict__, "duration": seconds, "seed": sim.seed + index})
            run = await simulate(target, market, this)
            kinds = run.summary.kinds
            checkouts = kinds["checkout"].ok if "checkout" in kinds else 0
            results.append(
                ClientRound(
                    bench_per_s=bench_per_s,
                    sim_per_s=rate(checkouts, run.summary.elapsed),
                    sim_ops_per_s=run.summary.achieved_rate,
                    sim_failed=run.summary.failed + len(errors),
                )
            )
            console.print(
                f"round {index + 1}: bench.checkout {bench_per_s:.0f}/s, "
                f"simulator {results[-1].sim_per_s:.0f} checkouts/s",
                highlight=False,
            )
        report = await client.audit()
        if not report.ok:
            console.print(report.summary(), markup=False)
            raise SystemExit("the audit failed after the runs")
    finally:
        await runtime.stop()
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.bench.simulator",
        description="The simulator's generator rate and its checkouts against bench.checkout.",
    )
    parser.add_argument(
        "--rates",
        default="2000,5000,10000,20000",
        help="offered rates (ops/s) for the open loop against the null target",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per null-loop rate")
    parser.add_argument("--orders", type=int, default=defaults.orders, help="bench checkouts")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of part 2")
    parser.add_argument("--num-cpus", type=int, default=defaults.num_cpus)
    parser.add_argument("--skip-client", action="store_true", help="part 1 only (no Ray)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both parts and print their tables."""
    args = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    console = report_console(100)
    cpu_rate, wall_rate = generator_rate(200_000)
    console.print(
        f"Generator alone (om workload, 200,000 draws): {cpu_rate:,.0f} ops per CPU second, "
        f"{wall_rate:,.0f} per wall second",
        highlight=False,
    )
    table = Table(title="Open loop against the null target (one process)", title_justify="left")
    for column in ("offered ops/s", "achieved ops/s", "p99 start lag ms", "core used"):
        table.add_column(column, justify="right")
    for value in (float(r) for r in args.rates.split(",")):
        figure = asyncio.run(null_loop(value, args.seconds))
        table.add_row(
            f"{figure.offered:,.0f}",
            f"{figure.achieved:,.0f}",
            f"{figure.p99_late_ms:.1f}",
            f"{figure.core_share:.0%}",
        )
    console.print(table)
    if args.skip_client:
        return 0
    config = BenchConfig(orders=args.orders, concurrency=args.concurrency, num_cpus=args.num_cpus)
    started, connected = init_ray(Settings(namespace="bench", ray_num_cpus=config.num_cpus))
    try:
        rounds = asyncio.run(client_rounds(config, args.rounds, console))
    finally:
        if started or connected:
            asyncio.run(Runtime(started_ray=started, connected_ray=connected).stop())
    table = Table(
        title=f"Checkouts per second through the client (concurrency {config.concurrency})",
        title_justify="left",
    )
    for column in ("round", "bench.checkout", "simulator (checkout preset)", "sim / bench"):
        table.add_column(column, justify="right")
    for index, one in enumerate(rounds, 1):
        share = ratio(one.sim_per_s, one.bench_per_s)
        table.add_row(
            str(index),
            f"{one.bench_per_s:.0f}",
            f"{one.sim_per_s:.0f}",
            "-" if share is None else times(share),
        )
    bench_median = statistics.median(r.bench_per_s for r in rounds)
    sim_median = statistics.median(r.sim_per_s for r in rounds)
    share = ratio(sim_median, bench_median)
    table.add_row(
        "median",
        f"{bench_median:.0f}",
        f"{sim_median:.0f}",
        "-" if share is None else times(share),
    )
    console.print(table)
    failed = sum(r.sim_failed for r in rounds)
    console.print(f"{failed} failed operations over part 2", highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
