"""The gateway benchmark's figures as a Markdown table (``--markdown PATH``): one column per
measured marketplace, the rows the bench README shows, written from the run's own figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marketplace.bench.gateway.config import ENDPOINTS, PATHS
from marketplace.bench.stats import times

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _endpoint_row(name: str) -> Row:
    def cell(run: dict[str, Any]) -> str:
        figures = run["endpoints"].get(name)
        if figures is None:
            return "-"
        ratio = figures["ratio_to_health"]
        shown = f"{figures['rps']:,.1f}"
        return shown if name == "health" or ratio is None else f"{shown} ({times(ratio)})"

    label = f"`{PATHS[name]}` rps" + ("" if name == "health" else " (/ health)")
    return label, cell


def _cpu_row(run: dict[str, Any]) -> str:
    cpu = run["endpoints"].get("checkout", {}).get("cpu_ms") or {}
    if not cpu:
        return "-"
    top = sorted(cpu.items(), key=lambda item: -item[1])[:3]
    return f"{sum(cpu.values()):.2f} ({', '.join(f'{k} {v:.2f}' for k, v in top)})"


def _ray_calls_row(run: dict[str, Any]) -> str:
    calls = run["endpoints"].get("checkout", {}).get("ray_calls_per_checkout")
    return "-" if calls is None else f"{calls:.2f}"


def _signup_row(phase: str) -> Row:
    def cell(run: dict[str, Any]) -> str:
        burst = run.get("signups")
        if not burst or burst[phase]["p50_s"] is None:
            return "-"
        errors = f", {burst[phase]['errors']} errors" if burst[phase]["errors"] else ""
        return f"{burst[phase]['p50_s']:.2f} / {burst[phase]['p95_s']:.2f} s{errors}"

    return f"sign-up burst, {phase} p50 / p95", cell


def _burst_ratio(run: dict[str, Any]) -> str:
    burst = run.get("signups")
    if not burst or burst["p95_over_hashing"] is None:
        return "-"
    return (
        f"{burst['p95_over_hashing']:.2f}x of {burst['hashing_s']:.2f} s (goal {burst['goal']:g}x)"
    )


ROWS: list[Row] = [
    ("start-up (Ray, actors, gateway, seed)", lambda run: f"{run['startup_s']:.1f} s"),
    *(_endpoint_row(name) for name in ENDPOINTS),
    ("CPU ms per checkout, all processes (top three)", _cpu_row),
    ("Ray calls per checkout, all processes", _ray_calls_row),
    _signup_row("register"),
    _signup_row("login"),
    ("burst p95 / that many hashes one after another", _burst_ratio),
]


def markdown(figures: dict[str, Any]) -> str:
    """The run's table, then one line per goal, then the no-op and ceiling it was held to."""
    runs = figures["ingresses"]
    labels = list(runs)
    lines = [
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for label, cell in ROWS:
        values = [cell(runs[name]) for name in labels]
        if all(value == "-" for value in values):
            continue
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    lines.append("")
    for key, goal in figures["goals"].items():
        verdict = "met" if goal["met"] else "not met"
        if "at_most" in goal:
            lines.append(f"- `{key}`: {goal['value']:.2f}, at most {goal['at_most']:g}, {verdict}")
            continue
        # Three decimals, so that a ratio just under its goal does not read as the goal.
        shown = "n/a" if goal["ratio"] is None else f"{goal['ratio']:.3f}x"
        lines.append(f"- `{key}`: {shown} against {goal['goal']:g}x, {verdict}")
    noop = figures.get("noop")
    ceiling = figures.get("client_ceiling")
    extras = []
    if noop is not None:
        extras.append(f"bare uvicorn no-op {noop['rps']:,.0f} rps")
    if ceiling is not None:
        extras.append(f"load generator ceiling {ceiling['rps']:,.0f} rps")
    if extras:
        lines.append(f"- baselines in the same run: {'; '.join(extras)}")
    return "\n".join(lines) + "\n"
