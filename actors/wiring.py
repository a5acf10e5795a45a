"""The one place that builds a marketplace's parts from ``Settings``: store, directory, client.

``Runtime`` (a notebook, the CLI, the tests), each gateway replica and the cluster's bootstrap
step all start through these functions, so a new part or a new setting is wired once.
"""

from __future__ import annotations

from actors.classes import ACTOR_CLASSES
from actors.client import MarketplaceClient
from actors.directory import Directory
from marketplace.config import Settings
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.users import UserStore


async def prepare_store(settings: Settings) -> None:
    """Apply every pending migration and ensure the admin account (both idempotent): created
    with the configured password, or given it when it changed; none without a password."""
    url = settings.resolved_database_url()
    await migrate.upgrade_async(url)
    credentials = settings.admin_credentials()
    if credentials is None:
        return
    engine = create_engine(url)
    try:
        await UserStore(engine).ensure_admin(*credentials)
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
