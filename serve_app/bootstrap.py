"""Prepare the database before ``serve_app.app:app`` is deployed on a cluster.

``marketplace up`` migrates the schema and ensures the admin account itself. A cluster deploys
the Serve application alone (``serve deploy``, a KubeRay RayService), so this step runs first:
as the Ray head pod's init container, or before the local rehearsal's ``ray start``. It waits
for the database to answer, applies every pending migration (idempotent) and makes sure the
admin account from ``MARKETPLACE_ADMIN_EMAIL`` / ``MARKETPLACE_ADMIN_PASSWORD`` exists.

``python -m serve_app.bootstrap [--wait SECONDS]``; settings come from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from actors.wiring import prepare_store
from marketplace.config import Settings
from marketplace.store.engine import create_engine

log = logging.getLogger("marketplace.bootstrap")


async def _database_answers(url: str) -> None:
    from sqlalchemy import text

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    finally:
        await engine.dispose()


async def wait_for_database(url: str, wait_s: float) -> None:
    """Until the database answers, at most ``wait_s`` seconds (then the last error)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            await _database_answers(url)
            return
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("database not answering yet (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(2)


async def bootstrap(settings: Settings, wait_s: float = 0.0) -> None:
    """Migrate the schema and ensure the admin account."""
    await wait_for_database(settings.resolved_database_url(), wait_s)
    await prepare_store(settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve_app.bootstrap", description=__doc__)
    parser.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for the database to answer"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    asyncio.run(bootstrap(settings, args.wait))
    log.info("database migrated; admin account %s ensured", settings.admin_email)


if __name__ == "__main__":
    main()
