"""``marketplace top``: a live view of the running marketplace, read from ``GET /metrics``."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from marketplace.cli.output import CliError, console, reported
from marketplace.cli.runtime_state import running, settings_from
from marketplace.cli.top_figures import Figures, Scrape, figures


def top(
    url: Annotated[
        str | None,
        typer.Option(
            help="The gateway to read (its GET /metrics); default: the one `marketplace up` "
            "serves in this directory."
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between two readings (each figure is over one).")
    ] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one reading's figures and exit (no live view).")
    ] = False,
) -> None:
    """Watch the running marketplace: requests per second and latency per route, checkouts by
    outcome, the order counters, actors (calls in flight, calls per second, p99, calls per
    batch, restarts), saga steps, writers' commits, the event relay and Serve's healthy
    replicas per deployment.

    Every figure is summed over all gateway replicas and actors (the gateway's GET /metrics),
    over the last interval. Figures reach it a few seconds after they happen.
    """
    with reported():
        base = url or _local_gateway()
        with httpx.Client(base_url=base, timeout=10) as http:
            before = _scrape(http)
            if once:
                time.sleep(interval)
                console.print(render(figures(before, _scrape(http)), base))
                return
            with Live(console=console, screen=False, auto_refresh=False) as live:
                live.update(f"Reading {base}/metrics every {interval:g} s...", refresh=True)
                try:
                    while True:
                        time.sleep(interval)
                        after = _scrape(http)
                        live.update(render(figures(before, after), base), refresh=True)
                        before = after
                except KeyboardInterrupt:
                    pass


def _local_gateway() -> str:
    found = running(settings_from().state_dir)
    gateway = (found or {}).get("gateway")
    if not gateway:
        raise CliError(
            "no marketplace with a gateway is running here: start one with `marketplace up`, "
            "or pass --url http://HOST:PORT"
        )
    return str(gateway["url"])


def _scrape(http: httpx.Client) -> Scrape:
    try:
        reply = http.get("/metrics")
    except httpx.HTTPError as exc:
        raise CliError(f"could not read {http.base_url}metrics: {exc}") from None
    if reply.status_code != 200:
        raise CliError(f"{http.base_url}metrics answered {reply.status_code}: {reply.text[:200]}")
    return Scrape.parse(reply.text, time.monotonic())


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def render(shown: Figures, source: str) -> Group:
    """The figures as rich tables."""
    routes = _table("Requests", "route", "req/s", "5xx/s", "p50 ms", "p99 ms")
    for (method, route), (rate, errors, p50, p99) in shown.routes.items():
        routes.add_row(f"{method} {route}", f"{rate:.1f}", f"{errors:.1f}", _ms(p50), _ms(p99))
    orders = _table("Checkouts", "outcome", "per s")
    for (status, reason), rate in sorted(shown.checkouts.items()):
        orders.add_row(f"{status} {reason}".strip(), f"{rate:.1f}")
    for reason, rate in sorted(shown.compensations.items()):
        orders.add_row(f"compensated {reason}", f"{rate:.1f}")
    counters = _table("Order counters", "counter", "value")
    for name, value in shown.order_counters.items():
        counters.add_row(name, f"{value:.0f}")
    actors = _table("Actors", "kind", "in flight", "calls/s", "p99 ms", "calls/batch", "restarts")
    for kind, (in_flight, rate, p99, per_batch, restarts) in shown.actors.items():
        batch = "-" if per_batch is None else f"{per_batch:.1f}"
        actors.add_row(kind, f"{in_flight:.0f}", f"{rate:.1f}", _ms(p99), batch, f"{restarts:.0f}")
    replicas = _table("Serve replicas", "deployment", "healthy")
    for (application, deployment), count in shown.replicas.items():
        replicas.add_row(f"{application} {deployment}".strip(), f"{count:.0f}")
    steps = _table("Saga steps", "step", "p50 ms", "p99 ms")
    for step, (p50, p99) in shown.steps.items():
        steps.add_row(step, _ms(p50), _ms(p99))
    writers = _table("Writers", "kind", "commits/s", "changes/commit", "p99 ms")
    for kind, (rate, per_commit, p99) in shown.writers.items():
        changes = "-" if per_commit is None else f"{per_commit:.1f}"
        writers.add_row(kind, f"{rate:.1f}", changes, _ms(p99))
    relay = _table("Event relay", "measure", "value")
    for measure, value in sorted(shown.relay.items()):
        relay.add_row(measure, f"{value:.0f}")
    if not shown.relay:
        relay.add_row("(no relay: no broker configured)", "")
    for table in (routes, orders, counters, actors, steps, writers, replicas):
        if not table.row_count:
            table.add_row("(none in this interval)", *[""] * (len(table.columns) - 1))
    header = f"{source}/metrics, over the last {shown.seconds:.1f} s (Ctrl-C to quit)"
    return Group(header, routes, orders, counters, actors, steps, writers, relay, replicas)
