"""Secrets: weak ones refused wherever the gateway can be reached or outside development, the
ones `marketplace up` generates kept 0600 and reused, and the admin account following the
configured password (real SQLite, real argon2)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from actors.wiring import prepare_store
from marketplace.config import MissingSecret, Settings
from marketplace.local_secrets import secrets_path, with_local_secrets
from marketplace.passwords import verify_password
from marketplace.store.engine import create_engine
from marketplace.store.users import UserStore

pytestmark = pytest.mark.unit

STRONG = "s" * 32


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"environment": "production"}, "MARKETPLACE_JWT_SECRET must be set"),
        ({"environment": "production", "jwt_secret": "change-me"}, "placeholder"),
        ({"environment": "production", "jwt_secret": "s" * 31}, "shorter than 32 bytes"),
        ({"http_host": "0.0.0.0", "jwt_secret": "change-me"}, "binds 0.0.0.0, not loopback"),
        ({"http_host": "10.1.2.3", "jwt_secret": "short"}, "shorter than 32 bytes"),
        (
            {"http_host": "0.0.0.0", "jwt_secret": STRONG, "admin_password": "admin-password"},
            "MARKETPLACE_ADMIN_PASSWORD is a published placeholder",
        ),
    ],
)
def test_weak_secrets_are_refused_where_the_gateway_is_exposed(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(**values)


@pytest.mark.parametrize(
    "values",
    [
        {},  # development on loopback: `up` generates what is missing
        {"http_host": "0.0.0.0"},  # likewise, and a generated secret is a strong one
        {"jwt_secret": "short"},  # a test's or a notebook's own, never reachable from elsewhere
        {"http_host": "::1", "jwt_secret": "short"},
        {"environment": "production", "jwt_secret": STRONG, "admin_password": "a-real-one"},
    ],
)
def test_secrets_that_pass(values: dict[str, Any]) -> None:
    Settings(**values)


def test_no_signing_key_is_a_clear_error_not_a_default() -> None:
    with pytest.raises(MissingSecret, match="MARKETPLACE_JWT_SECRET"):
        Settings().signing_secret()
    assert Settings().admin_credentials() is None
    generated = Settings().with_generated_secrets()
    assert len(generated.signing_secret()) >= 32
    assert generated.admin_credentials() is not None


def test_up_generates_secrets_once_keeps_them_private_and_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert with_local_secrets(Settings(), create=False) == (Settings(), [])  # nothing yet
    first, generated = with_local_secrets(Settings(), create=True)
    assert sorted(generated) == ["admin_password", "jwt_secret"]
    path = secrets_path(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.signing_secret()) >= 48
    again, generated_again = with_local_secrets(Settings(), create=True)
    assert generated_again == []
    assert again.signing_secret() == first.signing_secret()
    assert again.admin_credentials() == first.admin_credentials()
    # A reader (seed, load) gets the same without writing anything.
    assert with_local_secrets(Settings(), create=False)[0].admin_credentials() == (
        first.admin_credentials()
    )


def test_configured_secrets_win_and_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    configured = Settings(jwt_secret=SecretStr(STRONG), admin_password=SecretStr("from-the-env"))
    settings, generated = with_local_secrets(configured, create=True)
    assert generated == [] and settings.signing_secret() == STRONG
    assert not secrets_path(settings).exists()
    half, generated = with_local_secrets(Settings(jwt_secret=SecretStr(STRONG)), create=True)
    assert generated == ["admin_password"] and half.signing_secret() == STRONG
    assert "jwt_secret" not in secrets_path(half).read_text(encoding="utf-8")


def test_an_unreadable_secrets_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = secrets_path(Settings())
    path.parent.mkdir()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"secrets\.json is unreadable"):
        with_local_secrets(Settings(), create=True)


async def test_the_admin_account_follows_the_configured_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    await prepare_store(Settings(database_url=url))  # no password: no admin account
    engine = create_engine(Settings(database_url=url).resolved_database_url())
    store = UserStore(engine)
    try:
        assert await store.by_email("admin@marketplace.local") is None
        for password in ("first-password", "first-password", "rotated-password"):
            settings = Settings(database_url=url, admin_password=SecretStr(password))
            await prepare_store(settings)
            admin = await store.by_email("admin@marketplace.local")
            assert admin is not None and admin.role.value == "admin"
            assert verify_password(admin.password_hash, password)
        assert not verify_password(admin.password_hash, "first-password")
    finally:
        await engine.dispose()
