"""The gateway benchmark's report: a table per ingress, where the CPU went, and the goals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.table import Table

from marketplace.bench.gateway.config import (
    COLOCATED_GOALS,
    COST_VARIANTS,
    ENDPOINTS,
    GOALS,
    HAPROXY_OVER_PYTHON_GOAL,
    NO_METRICS,
    PATHS,
    RAY_CALLS_GOALS,
    BenchConfig,
)
from marketplace.bench.gateway.noop import HEALTH_OVER_NOOP_GOAL
from marketplace.bench.stats import pct, ratio, times


def render(ingress: str, figures: dict[str, Any], config: BenchConfig) -> Table:
    """One ingress's endpoints as a table."""
    table = Table(
        title=(
            f"{figures.get('ingress', ingress)} ingress, {figures.get('topology', 'distributed')} "
            f"topology: {config.duration:g}s per endpoint"
            + (f" in each of {config.rounds} rounds (medians)" if config.rounds > 1 else "")
            + f", concurrency {config.concurrency}, {figures['replicas']} gateway replica(s)"
        ),
        caption=(
            "client CPU: the load generator's CPU time over the window, in % of one core; "
            "machine CPU: share of all cores busy (anything running), from /proc/stat"
        ),
    )
    table.add_column("endpoint", justify="left")
    table.add_column("request", justify="left")
    for name in ("rps", "p50 ms", "p99 ms", "ratio to health"):
        table.add_column(name, justify="right", style="bold")
    for name in ("errors", "client CPU", "machine CPU"):
        table.add_column(name, justify="right")
    for name in ENDPOINTS:
        r = figures["endpoints"].get(name)
        if r is None:
            continue
        ratio = r["ratio_to_health"]
        table.add_row(
            name,
            PATHS[name],
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            "-" if ratio is None else times(ratio),
            str(r["errors"]),
            pct(r["client_cpu"]),
            pct(r["machine_cpu"]),
        )
    return table


def render_cpu(ingress: str, figures: dict[str, Any]) -> Table | None:
    """CPU milliseconds per request by process role, one column per endpoint."""
    endpoints = [name for name in ENDPOINTS if figures["endpoints"].get(name, {}).get("cpu_ms")]
    if not endpoints:
        return None
    table = Table(
        title=f"{ingress} ingress: CPU ms per request, by process on this host (medians)",
        caption="read from /proc over each measured window and divided by the requests answered",
    )
    table.add_column("process")
    for name in endpoints:
        table.add_column(name, justify="right")
    cpu = {name: figures["endpoints"][name]["cpu_ms"] for name in endpoints}
    roles = sorted(
        {role for per_role in cpu.values() for role in per_role},
        key=lambda role: -max(cpu[name].get(role, 0.0) for name in endpoints),
    )
    for role in roles:
        table.add_row(role, *(f"{cpu[name].get(role, 0.0):.2f}" for name in endpoints))
    table.add_row("total", *(f"{sum(cpu[name].values()):.2f}" for name in endpoints), style="bold")
    return table


def goals(
    runs: dict[str, dict[str, Any]], noop: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Which of the issues' goals the figures meet, as data and as lines to print (``noop``:
    the bare uvicorn no-op's figures, for the health goal)."""
    met: dict[str, Any] = {}
    lines = []
    for ingress, figures in runs.items():
        endpoints = figures["endpoints"]
        health = endpoints.get("health", {}).get("rps")
        if noop is not None and noop.get("rps") and health is not None:
            over = health / noop["rps"]
            ok = over >= HEALTH_OVER_NOOP_GOAL
            met[f"{ingress}.health_over_noop"] = {
                "ratio": over,
                "goal": HEALTH_OVER_NOOP_GOAL,
                "met": ok,
            }
            lines.append(
                f"goal {ingress}: health >= {HEALTH_OVER_NOOP_GOAL:g}x a bare uvicorn no-op: "
                f"{times(over)} {'[green]met[/]' if ok else '[red]not met[/]'}"
            )
        wanted = COLOCATED_GOALS if figures.get("topology") == "colocated" else GOALS
        for name, goal in wanted.items():
            if name not in endpoints:  # not measured in this run (--endpoints)
                continue
            ratio = endpoints.get(name, {}).get("ratio_to_health")
            ok = ratio is not None and ratio >= goal
            met[f"{ingress}.{name}"] = {"ratio": ratio, "goal": goal, "met": ok}
            shown = "n/a" if ratio is None else times(ratio)
            lines.append(
                f"goal {ingress}: {name} >= {goal:g}x health: {shown} "
                f"{'[green]met[/]' if ok else '[red]not met[/]'}"
            )
        calls = endpoints.get("checkout", {}).get("ray_calls_per_checkout")
        at_most = RAY_CALLS_GOALS.get(figures.get("topology", "distributed"))
        if calls is not None and at_most is not None:
            ok = calls <= at_most
            met[f"{ingress}.ray_calls_per_checkout"] = {
                "value": calls,
                "at_most": at_most,
                "met": ok,
            }
            lines.append(
                f"goal {ingress}: at most {at_most:g} Ray calls per checkout: {calls:.2f} "
                f"{'[green]met[/]' if ok else '[red]not met[/]'}"
            )
    comparison = haproxy_over_python(runs)
    if comparison is not None:
        ok = comparison >= HAPROXY_OVER_PYTHON_GOAL
        met["haproxy_over_python_health"] = {
            "ratio": comparison,
            "goal": HAPROXY_OVER_PYTHON_GOAL,
            "met": ok,
        }
        lines.append(
            f"goal: HAProxy health >= {HAPROXY_OVER_PYTHON_GOAL:g}x Python proxy: "
            f"{comparison:.2f}x {'[green]met[/]' if ok else '[red]not met[/]'}"
        )
    return met, lines


def haproxy_over_python(runs: dict[str, dict[str, Any]]) -> float | None:
    """HAProxy health rps over Python-proxy health rps, when both ran."""
    try:
        hap = runs["haproxy"]["endpoints"]["health"]["rps"]
        py = runs["python"]["endpoints"]["health"]["rps"]
    except KeyError:
        return None
    return ratio(float(hap), float(py))


def error_lines(figures: dict[str, Any]) -> Iterator[str]:
    """A line for every endpoint that had errors, and for every ingress that did not run."""
    for ingress, why in figures["skipped"].items():
        yield f"{ingress}: {why}"
    for ingress, run in figures["ingresses"].items():
        for name, r in run["endpoints"].items():
            if r["errors"]:
                yield (
                    f"{ingress} {name}: {r['errors']} errors {r['statuses']}; "
                    f"first: {r['first_error']}"
                )


def observability_cost(
    runs: dict[str, dict[str, Any]],
) -> dict[str, dict[str, dict[str, float | None]]] | None:
    """What metrics and tracing cost, per ``COST_VARIANTS`` entry measured and endpoint:
    throughput and CPU ms per request with the feature over without. Metrics: the default run
    (on) over its ``-nometrics`` twin; tracing: a ``-traceN%`` run over the default (off)."""
    found: dict[str, dict[str, dict[str, float | None]]] = {}
    for label, run in runs.items():
        variant = run.get("variant") or ""
        if not variant or variant not in COST_VARIANTS:
            continue
        base = runs.get(label.removesuffix(variant))
        if base is None:
            continue
        with_it, without = (base, run) if variant == NO_METRICS else (run, base)
        found[COST_VARIANTS[variant][1]] = _cost(with_it, without)
    return found or None


def _cost(with_it: dict[str, Any], without: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    cost: dict[str, dict[str, float | None]] = {}
    for name, on in with_it["endpoints"].items():
        off = without["endpoints"].get(name)
        if off is None:
            continue
        cpu_on, cpu_off = sum(on["cpu_ms"].values()), sum(off["cpu_ms"].values())
        cost[name] = {
            "rps_on_over_off": ratio(on["rps"], off["rps"]),
            "cpu_ms_on": cpu_on or None,
            "cpu_ms_off": cpu_off or None,
            "cpu_on_over_off": ratio(cpu_on, cpu_off) if cpu_on and cpu_off else None,
        }
    return cost


def observability_cost_lines(cost: dict[str, dict[str, dict[str, float | None]]]) -> list[str]:
    """The cost of metrics and of tracing, a line per comparison and endpoint."""
    lines = []
    for comparison, endpoints in cost.items():
        for name, figures in endpoints.items():
            rps, cpu = figures["rps_on_over_off"], figures["cpu_on_over_off"]
            cpu_text = (
                f"CPU {figures['cpu_ms_on']:.2f} / {figures['cpu_ms_off']:.2f} ms per request = "
                f"{cpu:.3f}x"
                if cpu is not None
                else "CPU n/a"
            )
            rps_text = "n/a" if rps is None else f"{rps:.3f}x"
            lines.append(f"{comparison}, {name}: throughput {rps_text}, {cpu_text}")
    return lines
