"""The user store's password changes: each bumps the token version and is found as a
revocation; a change conditional on the old hash loses a race instead of overwriting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from marketplace.domain.users import Role
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.users import UserStore

pytestmark = pytest.mark.unit


async def test_the_store_bumps_the_version_with_each_change(tmp_path: Path) -> None:
    await check_password_changes(f"sqlite:///{tmp_path / 'users.db'}")


async def check_password_changes(url: str) -> None:
    """Each change bumps the version and is a revocation; the conditional one can lose
    (``url``: an empty database; tests/integration runs it on PostgreSQL too)."""
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    try:
        users = UserStore(engine)
        before = datetime.now(UTC)
        ada = await users.register("ada@example.com", "password123", "Ada", Role.BUYER)
        assert ada.token_version == 0
        assert await users.revocations_since(before - timedelta(seconds=1)) == []

        changed = await users.set_password(ada.id, "hash-2", expected_hash=ada.password_hash)
        assert changed is not None
        assert (changed.password_hash, changed.token_version) == ("hash-2", 1)
        # a second change that proved the old password against the first hash: refused
        assert await users.set_password(ada.id, "hash-3", expected_hash=ada.password_hash) is None
        assert await users.set_password("usr_unknown", "hash-3") is None
        again = await users.set_password(ada.id, "hash-3")  # an admin's reset needs no hash
        assert again is not None and again.token_version == 2
        assert (await users.by_id(ada.id)) == again

        [(user_id, version, at)] = await users.revocations_since(before)
        assert (user_id, version) == (ada.id, 2) and at >= before
        assert await users.revocations_since(datetime.now(UTC) + timedelta(seconds=1)) == []

        admin = await users.ensure_admin("root@example.com", "admin-password-1")
        assert admin.token_version == 0
        rotated = await users.ensure_admin("root@example.com", "admin-password-2")
        assert rotated.token_version == 1 and rotated.role is Role.ADMIN
        assert (await users.ensure_admin("root@example.com", "admin-password-2")) == rotated
    finally:
        await engine.dispose()
