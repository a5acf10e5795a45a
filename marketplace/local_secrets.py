"""Secrets for a marketplace run from a working directory without configured ones.

``marketplace up`` with no ``MARKETPLACE_JWT_SECRET`` or ``MARKETPLACE_ADMIN_PASSWORD`` generates
each once (a 48-byte URL-safe signing key, an 18-byte admin password), keeps them in
``.marketplace/secrets.json`` (readable by the owner only) and reuses them on every later run;
the commands that join it from the same directory (``seed``, ``audit``, ``simulate``, ``load``)
read the same file. A value set in the environment always wins, and is never written.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from marketplace.config import Settings

SECRETS_FILE = "secrets.json"
# The file's keys, by setting, and how each is generated.
_GENERATED = {
    "jwt_secret": lambda: secrets.token_urlsafe(48),
    "admin_password": lambda: secrets.token_urlsafe(18),
}


def secrets_path(settings: Settings) -> Path:
    """Where the generated secrets are kept."""
    return settings.state_dir / SECRETS_FILE


def with_local_secrets(settings: Settings, *, create: bool) -> tuple[Settings, list[str]]:
    """``settings`` with every unset secret taken from ``.marketplace/secrets.json``; with
    ``create``, a secret the file lacks is generated and added to it. Returns the settings and
    the names of the secrets generated now (to tell the user once)."""
    missing = [name for name in _GENERATED if getattr(settings, name) is None]
    if not missing:
        return settings, []
    path = secrets_path(settings)
    stored = _read(path)
    generated = []
    for name in missing:
        if name not in stored and create:
            stored[name] = _GENERATED[name]()
            generated.append(name)
    if generated:
        _write(path, stored)
    update = {name: SecretStr(stored[name]) for name in missing if name in stored}
    return (settings.model_copy(update=update) if update else settings), generated


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path} is unreadable ({exc}); remove it to generate new secrets"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object; remove it to generate new secrets")
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _write(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    scratch.replace(path)
