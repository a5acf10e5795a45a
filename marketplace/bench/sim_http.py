"""The simulator over HTTP at a few open-loop rates, and whether its own client is the limit.

    python -m marketplace.bench.sim_http [--rates 50,100,200 --duration 10 --preset om]

Starts a marketplace the way the gateway benchmark does (a subprocess with its own local Ray,
the actors and the gateway behind Serve's HAProxy ingress, SQLite in a temporary folder), seeds
a synthetic market over HTTP (``marketplace.sim.http_seed``), then runs the simulator through
``HttpTarget`` at each rate for ``--duration`` seconds, open loop, and prints for each: offered
against achieved rate, failures by reason, p50/p99 per operation kind (from the intended start,
so a generator that falls behind shows in them), and the CPU of this process (the generator:
the workload, the loop and httpx) beside that of the marketplace's processes.

Then, unless ``--no-ceiling``, the figures it compares with, measured against the same gateway
in the same run at ``--concurrency`` requests in flight: ``GET /v1/health`` and
``GET /v1/products/{id}`` driven by the gateway benchmark's geventhttpclient load generator
(``marketplace.bench.gateway``), and ``GET /v1/health`` driven by httpx from this process, with
the CPU each client spent per request. If the simulator's achieved rate falls short of the
offered one while this process is near a full core, the generator is the bottleneck; if it
falls short with this process well under a core and the machine busy, the marketplace is.
Only ratios within one run mean much: the figures move with whatever else runs on the machine.

With the defaults it takes about 70 s after the marketplace is up; the start-up itself (Ray, the
actors, Serve) took 90 to 165 s on the shared, busy two-core machine it was written on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from marketplace.bench.cpu import busy_share, machine_cpu_times, meter_for_host
from marketplace.bench.gateway.config import SERVER_START_TIMEOUT_S, BenchConfig
from marketplace.bench.gateway.driver import drive
from marketplace.bench.gateway.server import Marketplace, server_args
from marketplace.bench.stats import percentile
from marketplace.sim.behaviours import carrier_ids
from marketplace.sim.http_seed import HttpMarket, seed_over_http
from marketplace.sim.http_target import HttpTarget
from marketplace.sim.loops import RunResult
from marketplace.sim.market import SyntheticMarket
from marketplace.sim.simulation import SimConfig, build_market, simulate

ADMIN_EMAIL = "admin@sim-bench.test"
ADMIN_PASSWORD = "sim-bench-admin-password"
SIMULATOR = "simulator (this process)"


@dataclass(frozen=True)
class Step:
    """One rate's run and the CPU spent meanwhile."""

    rate: float
    result: RunResult
    wall_s: float
    generator_cpu_s: float
    machine_busy: float | None
    cpu_by_role: dict[str, float]
    relogins: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.bench.sim_http", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rates", default="50,100,200", help="ops/s, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--preset", default="om")
    parser.add_argument("--seed", type=int, default=7, help="the market's seed")
    parser.add_argument("--sellers", type=int, default=5)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--buyers", type=int, default=100)
    parser.add_argument("--limit", type=int, default=256, help="httpx connections in all")
    parser.add_argument("--pool-size", type=int, default=8, help="connections per httpx client")
    parser.add_argument("--replicas", type=int, default=2, help="gateway replicas")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="requests in flight for the ceilings"
    )
    parser.add_argument("--ceiling-duration", type=float, default=3.0)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the comparison figures")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints its figures."""
    args = parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    # The marketplace subprocess reads these through its Settings: the admin registers carriers.
    os.environ["MARKETPLACE_ADMIN_EMAIL"] = ADMIN_EMAIL
    os.environ["MARKETPLACE_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    config = BenchConfig(
        duration=args.ceiling_duration,
        concurrency=args.concurrency,
        ingresses=("haproxy",),
        replicas=args.replicas,
        sellers=1,
        products_per_seller=8,
        buyers=4,
    )
    with tempfile.TemporaryDirectory(prefix="marketplace-bench-sim-http-") as folder:
        print("starting Ray, the actors and the gateway (subprocess, HAProxy ingress)", flush=True)
        began = time.monotonic()
        server = Marketplace("haproxy", Path(folder), config, server_args(config))
        try:
            try:
                ready = server.wait_ready(SERVER_START_TIMEOUT_S)
            except RuntimeError:
                print(server.tail(), file=sys.stderr)
                raise
            print(f"up at {ready['url']} after {time.monotonic() - began:.0f}s", flush=True)
            asyncio.run(run(ready, rates, args, config))
        finally:
            server.stop()
    return 0


async def run(
    ready: dict[str, Any], rates: list[float], args: argparse.Namespace, config: BenchConfig
) -> None:
    url = ready["url"]
    base = SimConfig(
        preset=args.preset,
        rate=rates[0] if rates else 1.0,
        duration=args.duration,
        seed=args.seed,
        sellers=args.sellers,
        products=args.products,
        buyers=args.buyers,
    )
    market = build_market(base)
    carriers = carrier_ids(market, base.the_preset.carriers)
    seeding = time.monotonic()
    seeded = await seed_over_http(
        url, market, carriers=carriers, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD
    )
    print(
        f"seeded {len(market.sellers)} sellers, {len(market.buyers)} buyers, {len(carriers)} "
        f"carriers and {len(market.products)} products over HTTP in "
        f"{time.monotonic() - seeding:.1f}s",
        flush=True,
    )
    steps: list[Step] = []
    async with HttpTarget(seeded, limit=args.limit, pool_size=args.pool_size) as target:
        for index, rate in enumerate(rates):
            # Another workload seed per rate, over the same market: the same seed would draw
            # the same idempotency keys, and its checkouts would replay the earlier orders.
            step = replace(base, rate=rate, seed=args.seed + 1 + index)
            steps.append(await measure(target, market, step))
            print_step(steps[-1])
    print_summary(steps)
    if not args.no_ceiling:
        await ceilings(url, ready, seeded, args, config)


async def measure(target: HttpTarget, market: SyntheticMarket, config: SimConfig) -> Step:
    """Run ``config`` against ``target``, sampling the CPU around it."""
    meter = meter_for_host()
    meter.labels[os.getpid()] = SIMULATOR
    relogins = target.relogins
    before, machine_before = meter.sample(), machine_cpu_times()
    own_before, wall_before = time.process_time(), time.monotonic()
    result = await simulate(target, market, config)
    own_after, wall_after = time.process_time(), time.monotonic()
    after, machine_after = meter.sample(), machine_cpu_times()
    return Step(
        rate=config.rate,
        result=result,
        wall_s=wall_after - wall_before,
        generator_cpu_s=own_after - own_before,
        machine_busy=busy_share(machine_before, machine_after),
        cpu_by_role={role: after[role] - before.get(role, 0.0) for role in after},
        relogins=target.relogins - relogins,
    )


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def print_step(step: Step) -> None:
    summary = step.result.summary
    completed = summary.total - summary.dropped
    reasons = Counter(
        r.outcome.reason for r in step.result.records if not r.outcome.ok and r.outcome.reason
    )
    print(
        f"\nrate {step.rate:g}/s: offered {summary.offered_rate:.1f}/s, achieved "
        f"{summary.achieved_rate:.1f}/s over {summary.elapsed:.1f}s; {summary.total} ops, "
        f"{summary.ok} ok, {summary.failed} failed, {summary.dropped} dropped",
        flush=True,
    )
    if reasons:
        print("  failures: " + ", ".join(f"{k} {n}" for k, n in reasons.most_common()))
    print(f"  {'kind':<15}{'count':>7}{'ok':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for kind, stats in summary.kinds.items():
        print(f"  {kind:<15}{stats.count:>7}{stats.ok:>7}{ms(stats.p50):>9}{ms(stats.p99):>9}")
    per_op = 1000 * step.generator_cpu_s / completed if completed else float("nan")
    busy = "-" if step.machine_busy is None else f"{step.machine_busy:.0%}"
    print(
        f"  generator CPU {step.generator_cpu_s / step.wall_s:.0%} of one core "
        f"({per_op:.2f} ms per operation); machine busy {busy} of {os.cpu_count()} CPUs"
    )
    roles = sorted(step.cpu_by_role.items(), key=lambda kv: -kv[1])
    print(
        "  CPU by process role, % of one core: "
        + ", ".join(f"{role} {spent / step.wall_s:.0%}" for role, spent in roles[:6] if spent > 0)
    )


def print_summary(steps: list[Step]) -> None:
    print(f"\n{'offered/s':>10}{'achieved/s':>12}{'p50 ms':>8}{'p99 ms':>8}{'gen CPU':>9}")
    for step in steps:
        summary = step.result.summary
        latencies = sorted(r.latency for r in step.result.records if r.latency is not None)
        p50 = percentile(latencies, 0.5) if latencies else None
        p99 = percentile(latencies, 0.99) if latencies else None
        print(
            f"{summary.offered_rate:>10.1f}{summary.achieved_rate:>12.1f}{ms(p50):>8}"
            f"{ms(p99):>8}{step.generator_cpu_s / step.wall_s:>9.0%}"
        )


async def ceilings(
    url: str,
    ready: dict[str, Any],
    seeded: HttpMarket,
    args: argparse.Namespace,
    config: BenchConfig,
) -> None:
    """The gateway's own figures in the same run, with two clients, for comparison."""
    print(
        f"\nfor comparison, the same gateway at concurrency {args.concurrency}, "
        f"{args.ceiling_duration:g}s each:"
    )
    for endpoint in ("health", "product"):
        result = await asyncio.to_thread(
            drive, url, endpoint, ready["seed"], config, args.ceiling_duration
        )
        cpu = result.client_cpu
        per_request = (
            f"{1000 * cpu / result.rps:.2f} ms CPU per request" if cpu and result.rps else "-"
        )
        print(
            f"  geventhttpclient {endpoint:<8}{result.rps:8.0f} rps  p50 {result.p50_ms:6.1f} ms"
            f"  errors {result.errors}  client CPU "
            f"{'-' if cpu is None else f'{cpu:.0%}'} of one core ({per_request})",
            flush=True,
        )
    layouts = {args.concurrency: "one httpx client", args.pool_size: "httpx as HttpTarget"}
    for pool_size, label in layouts.items():
        rps, cpu_share, p50 = await httpx_health(
            url, args.concurrency, args.ceiling_duration, pool_size
        )
        clients = -(-args.concurrency // pool_size)
        print(
            f"  {label} ({clients} x {pool_size} connections, this process) health {rps:6.0f} rps"
            f"  p50 {p50 * 1000:6.1f} ms  client CPU {cpu_share:.0%} of one core "
            f"({1000 * cpu_share / rps if rps else float('nan'):.2f} ms CPU per request)",
            flush=True,
        )
    print(
        "  An operation of the simulator is one request (a refused checkout: two); its CPU per "
        "operation above includes the workload and the loop besides httpx."
    )


async def httpx_health(
    url: str, concurrency: int, duration: float, pool_size: int
) -> tuple[float, float, float]:
    """(requests per second, share of one core, p50 seconds) of ``concurrency`` httpx workers
    looping on ``GET /v1/health`` for ``duration`` seconds after a one-second warm-up, spread
    over clients of ``pool_size`` connections (as ``HttpTarget`` spreads its requests)."""
    latencies: list[float] = []
    market = HttpMarket(base_url=url, password="")
    async with HttpTarget(market, limit=concurrency, pool_size=pool_size) as target:
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + 1.0
        end = measure_from + duration

        async def worker(http: httpx.AsyncClient) -> None:
            while loop.time() < end:
                began = loop.time()
                reply = await http.get("/v1/health")
                finished = loop.time()
                if reply.status_code == 200 and began >= measure_from and finished <= end:
                    latencies.append(finished - began)

        async def window() -> float:
            await asyncio.sleep(max(0.0, measure_from - loop.time()))
            cpu_from = time.process_time()
            await asyncio.sleep(max(0.0, end - loop.time()))
            return time.process_time() - cpu_from

        measured = asyncio.ensure_future(window())
        clients = target.clients
        await asyncio.gather(*(worker(clients[n % len(clients)]) for n in range(concurrency)))
        spent = await measured
    latencies.sort()
    return len(latencies) / duration, spent / duration, percentile(latencies, 0.5)


if __name__ == "__main__":
    sys.exit(main())
