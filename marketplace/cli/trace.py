"""``marketplace trace``: the span tree of a checkout (or any traced request), and where its
time went, read from the span files (``marketplace.trace_files``)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from marketplace.cli.output import CliError, console, reported
from marketplace.config import Settings
from marketplace.trace_export import trace_dir
from marketplace.trace_files import (
    CATEGORIES,
    Span,
    Trace,
    breakdown,
    matching,
    queued_seconds,
    read_spans,
    traces,
)


def trace_command(
    key: Annotated[
        str | None,
        typer.Argument(
            help="An order id (or a trace id, the X-Trace-Id of a traced answer); without it, "
            "the latest traces are listed."
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where the span files are (default: MARKETPLACE_TRACE_DIR, else "
            ".marketplace/traces).",
        ),
    ] = None,
    latest: Annotated[int, typer.Option(min=1, help="How many traces the list shows.")] = 10,
) -> None:
    """Show a traced checkout: each hop (gateway, coordinator, saga steps, inventory, payments,
    shipments, commits) with its duration and start, and where the time went (gateway,
    queueing for a batch, Ray calls, actor work, commits).

    Requests are traced when the marketplace runs with MARKETPLACE_TRACE_SAMPLE above 0
    (`marketplace up --trace-sample 1`); spans reach their files within a second.
    """
    with reported():
        # The folder only: reading spans needs no secrets (settings_from would make them).
        configured = os.environ.get("MARKETPLACE_TRACE_DIR", "")
        where = directory or trace_dir(Settings.model_construct(trace_dir=configured))
        if not where.is_dir():
            raise CliError(
                f"no span files in {where}: start the marketplace with tracing on "
                "(`marketplace up --trace-sample 1`, or MARKETPLACE_TRACE_SAMPLE) and make a "
                "request"
            )
        found = traces(read_spans(where))
        if key is None:
            console.print(_listing(found[-latest:], where))
            return
        chosen = matching(found, key)
        if not chosen:
            raise CliError(
                f"no trace in {where} names {key!r} ({len(found)} traces there; only sampled "
                "requests are traced, and spans take up to a second to be written)"
            )
        for one in chosen:
            console.print(render(one))


def render(trace: Trace) -> Group:
    """One trace: its tree, then where its time went."""
    when = datetime.datetime.fromtimestamp(trace.start / 1e9, tz=datetime.UTC)
    title = Text.assemble(
        ("trace ", "bold"),
        (trace.trace_id, "cyan"),
        f"  {when:%Y-%m-%d %H:%M:%S} UTC  {_ms(trace.seconds)}",
    )
    if trace.order_ids:
        title.append(f"  order {', '.join(trace.order_ids)}")
    tree = Tree(title)
    for root in trace.roots:
        _add(tree, root, trace.start)
    parts: list[RenderableType] = [tree]
    if trace.orphans:
        parts.append(
            Text(
                f"{len(trace.orphans)} span(s) whose parent is missing (a process that died, "
                "or spans not written yet)",
                style="yellow",
            )
        )
    parts.append(_where_the_time_went(trace))
    return Group(*parts)


def _add(tree: Tree, span: Span, origin: int) -> None:
    label = Text.assemble(
        (span.name, "bold" if span.kind == "server" else ""),
        f"  {_ms(span.seconds)}",
        (f"  +{(span.start - origin) / 1e6:.2f} ms", "dim"),
    )
    if span.process:
        label.append(f"  [{span.process}]", style="dim")
    if span.kind == "client":
        details = []
        size = span.batch_size
        if size is not None:
            details.append(f"queued {_ms(queued_seconds(span))}, batch of {size}")
        details.append(f"own {_ms(span.own_seconds())}")
        label.append(f"  ({'; '.join(details)})", style="magenta")
    if span.error:
        label.append(f"  {span.error}", style="red")
    branch = tree.add(label)
    for child in span.children:
        _add(branch, child, origin)


def _where_the_time_went(trace: Trace) -> Group:
    totals = breakdown(trace)
    whole = sum(totals.values()) or 1.0
    table = Table()
    table.add_column("part")
    table.add_column("ms", justify="right")
    table.add_column("share", justify="right")
    for part in CATEGORIES:
        table.add_row(part, f"{totals[part] * 1e3:.2f}", f"{totals[part] / whole:.0%}")
    return Group(
        Text("Where the time went (the own time of every span, by part):", style="bold"),
        table,
        Text(
            "gateway: the replica's own work · queued: waiting for a batch to leave · ray call: "
            "serialization, transport and the callee's mailbox · actor work: an actor's own "
            "time · commit: waiting for a group commit. Hops that ran at the same time are "
            "all counted, so the parts can add up to more than the request took.",
            style="dim",
        ),
    )


def _listing(found: list[Trace], where: Path) -> Table:
    table = Table(title=f"Latest traces in {where}", title_justify="left")
    table.add_column("trace id", no_wrap=True, min_width=32)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("request", overflow="fold")
    table.add_column("ms", justify="right")
    table.add_column("order", overflow="fold")
    for one in found:
        when = datetime.datetime.fromtimestamp(one.start / 1e9, tz=datetime.UTC)
        table.add_row(
            one.trace_id,
            f"{when:%H:%M:%S.%f}"[:-3],
            one.roots[0].name if one.roots else "?",
            f"{one.seconds * 1e3:.1f}",
            ", ".join(one.order_ids),
        )
    if not found:
        table.caption = "No traces yet."
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"
