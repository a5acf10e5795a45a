"""The gateway benchmark's command line (and the dispatch to its own subprocesses)."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from marketplace.bench.gateway.config import (
    ENDPOINTS,
    INGRESSES,
    MODULE,
    TOPOLOGIES,
    BenchConfig,
)
from marketplace.bench.gateway.driver import load_main
from marketplace.bench.gateway.markdown import markdown
from marketplace.bench.gateway.noop import noop_main
from marketplace.bench.gateway.report import (
    error_lines,
    goals,
    observability_cost_lines,
    render,
    render_cpu,
)
from marketplace.bench.gateway.run import bench
from marketplace.bench.gateway.server import serve_main
from marketplace.bench.gateway.signups import signup_line
from marketplace.bench.stats import report_console


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (the ``--_`` options are the benchmark's own subprocesses)."""
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Requests per second and latency per endpoint, against GET /v1/health, "
        "for Serve's HAProxy ingress and its Python proxy and for the colocated topology; "
        "a bare uvicorn no-op, the load generator's ceiling and a sign-up burst beside them.",
    )
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="measured seconds per endpoint"
    )
    parser.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="requests in flight"
    )
    parser.add_argument("--ingress", choices=("both", *INGRESSES), default="both")
    parser.add_argument(
        "--topology",
        choices=("both", *TOPOLOGIES),
        default="both",
        help="distributed: every ingress, one process per actor; colocated: the first ingress, "
        "one process per partition (MARKETPLACE_TOPOLOGY); both (default): all of these",
    )
    parser.add_argument(
        "--warmup", type=float, default=defaults.warmup, help="unmeasured seconds per endpoint"
    )
    parser.add_argument(
        "--client-procs",
        type=int,
        default=defaults.client_procs,
        help="load-generator processes (the machine's cores are shared with the server)",
    )
    parser.add_argument(
        "--replicas", type=int, default=defaults.replicas, help="gateway replicas (fixed)"
    )
    parser.add_argument("--sellers", type=int, default=defaults.sellers)
    parser.add_argument("--products-per-seller", type=int, default=defaults.products_per_seller)
    parser.add_argument("--buyers", type=int, default=defaults.buyers)
    parser.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help=f"comma-separated subset of {','.join(ENDPOINTS)} (health is always measured: "
        "every ratio is to it)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="measure every endpoint this many times, interleaved; report the medians",
    )
    parser.add_argument(
        "--signups",
        type=int,
        default=defaults.signups,
        help="concurrent registrations (then logins) in the sign-up burst of each run; 0 skips it",
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write the figures as a Markdown table"
    )
    parser.add_argument(
        "--observability-cost",
        action="store_true",
        help="also run the first ingress (distributed) with metrics off, and with 1%% and "
        "100%% of requests traced, and print what metrics and tracing cost per endpoint "
        "(throughput and CPU per request, with over without)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--_load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_serve", choices=INGRESSES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_noop", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--_topology", choices=TOPOLOGIES, default="distributed", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    for name in ("concurrency", "client_procs", "replicas", "sellers", "buyers", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.signups < 0:
        parser.error("--signups must not be negative")
    if args.products_per_seller < 1:
        parser.error("--products-per-seller must be at least 1")
    unknown = set(args.endpoints.split(",")) - set(ENDPOINTS)
    if unknown:
        parser.error(f"--endpoints: unknown {', '.join(sorted(unknown))}")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    return args


def config_from(args: argparse.Namespace) -> BenchConfig:
    """The run's config from parsed arguments."""
    return BenchConfig(
        duration=args.duration,
        concurrency=args.concurrency,
        ingresses=INGRESSES if args.ingress == "both" else (args.ingress,),
        warmup=args.warmup,
        client_procs=args.client_procs,
        replicas=args.replicas,
        sellers=args.sellers,
        products_per_seller=args.products_per_seller,
        buyers=args.buyers,
        ceiling_duration=min(args.duration, BenchConfig.ceiling_duration),
        endpoints=tuple(e for e in ENDPOINTS if e == "health" or e in args.endpoints.split(",")),
        rounds=args.rounds,
        topologies=TOPOLOGIES if args.topology == "both" else (args.topology,),
        signups=args.signups,
        observability_cost=args.observability_cost,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its subprocesses); exit status 1 if an ingress failed."""
    args = parse_args(argv)
    if args._load:
        return load_main()
    if args._noop is not None:
        return noop_main(args._noop)
    config = config_from(args)
    if args._serve is not None:
        return serve_main(args._serve, args._workdir, config, args._topology)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    console = report_console(120)
    began = time.monotonic()
    figures = bench(config, console)
    for ingress, run in figures["ingresses"].items():
        console.print(render(ingress, run, config))
        cpu_table = render_cpu(ingress, run)
        if cpu_table is not None:
            console.print(cpu_table)
    comparison = figures["haproxy_over_python_health"]
    if comparison is not None:
        hap = figures["ingresses"]["haproxy"]["endpoints"]["health"]["rps"]
        py = figures["ingresses"]["python"]["endpoints"]["health"]["rps"]
        console.print(
            f"HAProxy health rps / Python-proxy health rps: {hap:.0f} / {py:.0f} = "
            f"{comparison:.2f}x",
            highlight=False,
        )
    ceiling = figures["client_ceiling"]
    if ceiling is not None:
        shares = ", ".join(
            f"{ingress} health {run['endpoints']['health']['rps'] / ceiling['rps'] * 100:.0f}%"
            for ingress, run in figures["ingresses"].items()
            if "health" in run["endpoints"] and ceiling["rps"]
        )
        console.print(
            f"client ceiling (static reply, same concurrency): {ceiling['rps']:.0f} rps "
            f"({shares} of it); a row close to it is limited by the load generator, "
            "a row well below it by the server",
            highlight=False,
        )
    noop = figures["noop"]
    if noop is not None:
        console.print(
            f"bare uvicorn + Starlette no-op (one process, same load generator): "
            f"{noop['rps']:.0f} rps",
            highlight=False,
        )
    load = figures["machine"]["loadavg_before"]
    if load is not None:
        console.print(
            f"machine: {figures['machine']['cpu_count']} CPUs, load average "
            f"{load[0]:.1f} when the run began (the figures share the CPUs with it)",
            highlight=False,
        )
    _, lines = goals(figures["ingresses"], noop)
    for line in lines:
        console.print(line, highlight=False)
    if figures["observability_cost"]:
        for line in observability_cost_lines(figures["observability_cost"]):
            console.print(line, highlight=False)
    for label, run in figures["ingresses"].items():
        if run.get("signups"):
            console.print(signup_line(label, run["signups"]), highlight=False)
    for line in error_lines(figures):
        console.print(f"[yellow]{line}[/]", highlight=False)
    console.print(f"total {time.monotonic() - began:.0f}s", highlight=False)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        console.print(f"figures written to {args.json}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(figures), encoding="utf-8")
        console.print(f"table written to {args.markdown}")
    failed = [name for name, why in figures["skipped"].items() if why.startswith("failed")]
    return 1 if failed or not figures["ingresses"] else 0
