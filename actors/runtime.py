"""Start and stop the marketplace: Ray (local or joined), the schema, the actors, a client."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

import ray

from actors.client import MarketplaceClient
from actors.directory import Directory
from marketplace.config import Settings
from marketplace.domain.users import Role
from marketplace.store import migrate
from marketplace.store.engine import create_engine

log = logging.getLogger(__name__)


def init_ray(settings: Settings) -> bool:
    """Join ``settings.ray_address`` or start a local Ray; True if this call started it."""
    if ray.is_initialized():
        return False
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace=settings.namespace, log_to_driver=False)
        return False
    ray.init(
        num_cpus=settings.ray_num_cpus or max(os.cpu_count() or 2, 2),
        namespace=settings.namespace,
        include_dashboard=False,
        log_to_driver=False,
    )
    return True


@dataclass
class Runtime:
    """One running marketplace. ``await Runtime(settings).start()`` gives the client."""

    settings: Settings = field(default_factory=Settings)
    started_ray: bool = False
    client: MarketplaceClient | None = None

    async def start(self) -> MarketplaceClient:
        """Migrate the store, start or join Ray, get-or-create the actors, ensure the admin."""
        settings = self.settings.model_copy(
            update={"database_url": self.settings.resolved_database_url()}
        )
        self.settings = settings
        await migrate.upgrade_async(settings.database_url)
        self.started_ray = init_ray(settings)
        directory = Directory(settings)
        await asyncio.to_thread(directory.create_all)
        engine = create_engine(settings.database_url)
        self.client = MarketplaceClient(directory, engine)
        await self.client.users.ensure(
            settings.admin_email, settings.admin_password.get_secret_value(), "Admin", Role.ADMIN
        )
        return self.client

    async def stop(self, *, kill_actors: bool = True) -> None:
        """Flush writes, kill the actors, and shut Ray down if this runtime started it."""
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.flush(), 30)
            except Exception:
                log.exception("flushing actors before stop failed")
            if kill_actors:
                await asyncio.to_thread(self.client.directory.kill_all)
            await self.client.engine.dispose()
            self.client = None
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
