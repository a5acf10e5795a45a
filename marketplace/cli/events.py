"""``marketplace events``: watch the event stream.

``marketplace events tail [--type TYPE ...] [--amqp-url URL]`` binds an exclusive,
auto-deleted queue to ``marketplace.events`` (one binding per ``--type``, topic patterns
allowed: ``order.*``; every event by default) and prints events as they arrive until Ctrl+C.

Registered in the main command (``marketplace/cli/__init__.py``) as ``marketplace events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import orjson
import typer
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from marketplace.config import Settings
from marketplace.events.envelope import Envelope
from marketplace.events.topology import Topology, declare_events_exchange

events_app = typer.Typer(
    help="Watch the events the marketplace publishes to RabbitMQ.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
DATA_WIDTH = 160


@events_app.callback()
def main() -> None:
    """Watch the events the marketplace publishes to RabbitMQ (``marketplace.events``)."""


@events_app.command()
def tail(
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            help="Event type to show (repeatable; topic patterns such as 'order.*'). Default: all.",
        ),
    ] = None,
    amqp_url: Annotated[
        str | None,
        typer.Option(help="Broker URL. Default: MARKETPLACE_AMQP_URL.", show_default=False),
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            help="Events exchange. Default: MARKETPLACE_EVENTS_EXCHANGE or the contract's."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each envelope as one line of JSON.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events.", show_default=False)
    ] = None,
) -> None:
    """Print events live as the relay publishes them, until Ctrl+C."""
    settings = Settings()
    url = amqp_url or settings.amqp_url
    if not url:
        err_console.print(
            Text.assemble(
                ("error: ", "bold red"), "no broker: pass --amqp-url or set MARKETPLACE_AMQP_URL"
            )
        )
        raise typer.Exit(2)
    topology = Topology(events_exchange=exchange or settings.events_exchange)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(_tail(url, topology, types or ["#"], as_json=as_json, limit=limit))
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            err_console.print(
                Text.assemble(("error: ", "bold red"), f"cannot reach {_masked(url)}: {exc!r}")
            )
            raise typer.Exit(1) from None


async def _tail(
    url: str, topology: Topology, patterns: list[str], *, as_json: bool, limit: int | None
) -> None:
    connection = await aio_pika.connect_robust(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await declare_events_exchange(channel, topology)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for pattern in dict.fromkeys(patterns):
            await queue.bind(topology.events_exchange, pattern)
        err_console.print(
            f"listening on {topology.events_exchange} for {', '.join(patterns)} at {_masked(url)}"
            " (Ctrl+C to stop)",
            style="dim",
        )
        shown = 0
        async with queue.iterator() as messages:
            async for message in messages:
                _show(message, as_json=as_json)
                await message.ack()
                shown += 1
                if limit is not None and shown >= limit:
                    break


def _show(message: AbstractIncomingMessage, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(message.body.decode(errors="replace") + "\n")
        sys.stdout.flush()
        return
    try:
        envelope = Envelope.from_json(message.body)
    except (ValueError, ValidationError):
        console.print(
            Text.assemble(
                ("?? ", "bold red"),
                (f"{message.routing_key} {message.message_id}: ", "red"),
                message.body[:DATA_WIDTH].decode(errors="replace"),
            )
        )
        return
    data = orjson.dumps(envelope.data).decode()
    if len(data) > DATA_WIDTH:
        data = data[: DATA_WIDTH - 1] + "…"
    console.print(
        Text.assemble(
            (envelope.time.strftime("%H:%M:%S.%f")[:-3] + " ", "dim"),
            (f"{envelope.type:<20}", _style(envelope.type)),
            (f" {envelope.subject}#{envelope.sequence}", "bold"),
            (f" {envelope.id}", "dim"),
            "\n    ",
            data,
        )
    )


def _style(event_type: str) -> str:
    aggregate = event_type.split(".", 1)[0]
    return {
        "order": "cyan",
        "payment": "green",
        "stock": "yellow",
        "product": "magenta",
        "shipment": "blue",
    }.get(aggregate, "white")


def _masked(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
