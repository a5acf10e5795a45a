"""The one place that builds a marketplace's parts from ``Settings``: store, directory, client.

``Runtime`` (a notebook, the CLI, the tests), each gateway replica and the cluster's bootstrap
step all start through these functions, so a new part or a new setting is wired once.
"""

from __future__ import annotations

from actors.classes import ACTOR_CLASSES
from actors.client import MarketplaceClient
from actors.directory import Directory
from marketplace.config import Settings
from marketplace.domain.users import Role
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.users import UserStore


async def prepare_store(settings: Settings) -> None:
    """Apply every pending migration and ensure the admin account (both idempotent)."""
    url = settings.resolved_database_url()
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    try:
        await UserStore(engine).ensure(
            settings.admin_email,
            settings.admin_password.get_secret_value(),
            "Admin",
            Role.ADMIN,
        )
    finally:
        await engine.dispose()


def connect(settings: Settings) -> MarketplaceClient:
    """A client over the actors named by ``settings`` and its own engine on the store.

    Nothing is created or looked up yet: Ray must be connected before the first call.
    """
    return MarketplaceClient(Directory(settings), create_engine(settings.resolved_database_url()))


def create_actors(directory: Directory) -> None:
    """Get-or-create every actor (blocking; from an event loop, call it in a thread)."""
    directory.create_all(ACTOR_CLASSES)
