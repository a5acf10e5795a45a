"""Join the marketplace that ``up`` runs here, or start one for the length of a command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketplace.cli.output import CliError, console
from marketplace.cli.runtime_state import (
    RAY_AUTH_MODE,
    join_settings,
    running,
    settings_from,
    starting_pid,
)
from marketplace.config import Settings

if TYPE_CHECKING:
    from actors.client import MarketplaceClient


@dataclass
class Session:
    """A marketplace a command works with, and how the command got it."""

    client: MarketplaceClient
    settings: Settings
    joined: bool
    description: str


async def _await_starting(state_dir: Path, timeout_s: float = 300.0) -> dict[str, Any] | None:
    """Wait for an ``up`` that is still starting here to write runtime.json, and return it.

    Without this, a ``seed`` or ``audit`` run in that window would start a second marketplace
    on the same database, whose writes the starting one's actors never see.
    """
    pid = starting_pid(state_dir)
    if pid is None:
        return None
    console.print(f"Waiting for the marketplace that is starting here (pid {pid})...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = running(state_dir)
        if found is not None:
            return found
        if starting_pid(state_dir) is None:
            return None  # it stopped without starting: run in-process instead
        await asyncio.sleep(0.5)
    raise CliError(
        f"the marketplace starting here (pid {pid}) has not finished starting in "
        f"{timeout_s:.0f} s; see its terminal"
    )


@contextlib.asynccontextmanager
async def marketplace_session() -> AsyncIterator[Session]:
    """Join the marketplace that `up` runs here, or start one for the length of the block.

    Joining: Ray address, namespace and routing settings come from runtime.json, and the actors
    are left running afterwards. Starting: a local Ray (or MARKETPLACE_RAY_ADDRESS) on the
    configured database; actors this block created are killed and a Ray it started is shut down
    at the end, and the data stays in the database for the next `up`.
    """
    base = settings_from()
    found = running(base.state_dir) or await _await_starting(base.state_dir)
    settings = join_settings(base, found) if found is not None else base
    if found is not None and found.get("ray_auth_mode"):
        # Before Ray is imported: its config reads the variable once.
        os.environ.setdefault(RAY_AUTH_MODE, str(found["ray_auth_mode"]))

    import ray

    from actors.directory import ORDERS, Directory
    from actors.runtime import Runtime, init_ray

    try:
        started_ray, connected_ray = init_ray(settings)
    except Exception as exc:
        where = f"the running marketplace (pid {found['pid']})" if found else "Ray"
        raise CliError(f"could not connect to {where}: {exc}") from None
    try:
        # The process that holds orders-0: itself, or in the colocated topology cell-0.
        ray.get_actor(Directory(settings).host(f"{ORDERS.name}-0"), namespace=settings.namespace)
        preexisting = True
    except ValueError:
        preexisting = False
    address = ray.get_runtime_context().gcs_address
    if found is not None:
        description = (
            f"Joined the running marketplace (pid {found['pid']}): Ray at {address}, "
            f"namespace {settings.namespace}."
        )
    elif preexisting:
        description = (
            f"Joined marketplace actors already running on Ray at {address} "
            f"(namespace {settings.namespace}); they are left running."
        )
    elif started_ray:
        description = (
            "No marketplace is running here: started an in-process one (local Ray) for this "
            "command; it stops afterwards and the data stays in the database."
        )
    else:
        description = (
            f"Started marketplace actors on the Ray cluster at {address} for this command; "
            "they stop afterwards and the data stays in the database."
        )
    runtime = Runtime(settings)
    try:
        await runtime.start()
        assert runtime.client is not None
        yield Session(
            client=runtime.client,
            settings=runtime.settings,
            joined=found is not None or preexisting,
            description=description,
        )
    finally:
        await runtime.stop(kill_actors=not preexisting)
        if (started_ray or connected_ray) and ray.is_initialized():
            ray.shutdown()  # for a joined cluster this only disconnects
