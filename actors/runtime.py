"""Start and stop the marketplace: Ray (local or joined), the schema, the actors, a client."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

import ray

from actors.client import MarketplaceClient
from actors.wiring import connect, create_actors, prepare_store
from marketplace.config import Settings

log = logging.getLogger(__name__)


def _use_local_auth_token() -> None:
    """Joining by address sends the cluster token (~/.ray/auth_token) only when token auth is
    on in this process; Ray 2.60 turns it on by itself for a new local cluster, not for a join.
    """
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # an older or newer Ray without token auth, or with its own default
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def init_ray(settings: Settings) -> tuple[bool, bool]:
    """Join ``settings.ray_address`` (or RAY_ADDRESS) or start a local Ray.

    Returns (started, connected): whether this call started a cluster, and whether it
    connected this process (so ``stop`` knows what to undo).
    """
    if ray.is_initialized():
        return False, False
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        _use_local_auth_token()
        ray.init(address=address, namespace=settings.namespace, log_to_driver=False)
        return False, True
    # "local": a new instance even when a `ray start` cluster runs on this machine, which a bare
    # ray.init() would join (through /tmp/ray/ray_current_cluster) and then refuse num_cpus.
    ray.init(
        address="local",
        num_cpus=settings.ray_num_cpus or max(os.cpu_count() or 2, 2),
        namespace=settings.namespace,
        include_dashboard=settings.ray_include_dashboard,
        log_to_driver=False,
    )
    return True, True


@dataclass
class Runtime:
    """One running marketplace. ``await Runtime(settings).start()`` gives the client."""

    settings: Settings = field(default_factory=Settings)
    started_ray: bool = False
    connected_ray: bool = False
    client: MarketplaceClient | None = None

    async def start(self) -> MarketplaceClient:
        """Migrate the store and ensure the admin, start or join Ray, get-or-create the actors."""
        settings = self.settings.model_copy(
            update={"database_url": self.settings.resolved_database_url()}
        )
        self.settings = settings
        await prepare_store(settings)
        self.started_ray, self.connected_ray = init_ray(settings)
        self.client = client = connect(settings)
        try:
            await asyncio.to_thread(create_actors, client.directory)
        except BaseException:
            await self.stop()
            raise
        return self.client

    async def stop(self, *, kill_actors: bool = True) -> None:
        """Flush writes, kill the actors (unless ``kill_actors`` is False, to leave a shared
        marketplace running), and disconnect from (or shut down) the Ray this runtime started
        or joined."""
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.flush(), 30)
            except Exception:
                log.exception("flushing actors before stop failed")
            await self.client.close()
            if kill_actors:
                await asyncio.to_thread(self.client.directory.kill_all)
            await self.client.engine.dispose()
            self.client = None
        if (self.started_ray or self.connected_ray) and ray.is_initialized():
            ray.shutdown()  # for a joined cluster this only disconnects this process
        self.started_ray = self.connected_ray = False
