"""What a Locust process of this project reads from its environment (all optional).

``marketplace load`` sets these from a scenario file (``load/runner.py``); a plain
``locust -f load/locustfile.py`` run reads whatever the shell gives it.

- ``LOAD_SHAPE`` / ``LOAD_SHAPE_PARAMS``: the load shape to run and its parameters (JSON); without
  a shape, Locust's own users and spawn rate (web UI or command line) drive the run.
- ``LOAD_MANIFEST``: the seed manifest (default ``.marketplace/seed.json``); ``none`` ignores it.
  Without a manifest users register themselves and sellers list the catalog as they go.
- ``LOAD_WEIGHT_BROWSER`` / ``_BUYER`` / ``_SELLER`` / ``_CARRIER`` / ``_FLASH_BUYER``:
  class weights.
- ``LOAD_FLASH_PRODUCT``: the scarce product of the flash sale (else one is listed at start with
  ``LOAD_FLASH_STOCK`` units, default 20).
- ``LOAD_ORDER_LOG``: a JSON-lines file where every checkout's answer is appended.
- ``MARKETPLACE_ADMIN_EMAIL`` / ``MARKETPLACE_ADMIN_PASSWORD``: the admin (carriers are made by it).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_WEIGHTS = {"browser": 4, "buyer": 3, "seller": 1, "carrier": 1, "flash_buyer": 0}
USER_KINDS = tuple(DEFAULT_WEIGHTS)  # the kinds of user a scenario may weigh
DEFAULT_FLASH_STOCK = 20


def weight(kind: str) -> int:
    """The class weight of a kind of user (``LOAD_WEIGHT_<KIND>``, else the default)."""
    raw = os.environ.get(f"LOAD_WEIGHT_{kind.upper()}")
    return max(0, int(raw)) if raw not in (None, "") else DEFAULT_WEIGHTS[kind]


def flash_stock() -> int:
    """Units of the flash sale's product when this process lists it (``LOAD_FLASH_STOCK``)."""
    return int(os.environ.get("LOAD_FLASH_STOCK", str(DEFAULT_FLASH_STOCK)))


def manifest_path() -> Path | None:
    """The seed manifest to use, or None."""
    raw = os.environ.get("LOAD_MANIFEST", "")
    if raw.lower() == "none":
        return None
    path = Path(raw) if raw else Path.cwd() / ".marketplace" / "seed.json"
    return path if path.is_file() else None


def order_log_path() -> str | None:
    """Where checkouts' answers are appended (``LOAD_ORDER_LOG``), or None."""
    return os.environ.get("LOAD_ORDER_LOG") or None


def admin_credentials() -> tuple[str, str]:
    """The admin's email and password: ``MARKETPLACE_ADMIN_EMAIL`` and
    ``MARKETPLACE_ADMIN_PASSWORD``, else the password ``marketplace up`` generated here
    (``.marketplace/secrets.json``); an empty password when there is neither, which the
    gateway refuses like any wrong one."""
    from marketplace.config import Settings
    from marketplace.local_secrets import with_local_secrets

    settings, _ = with_local_secrets(Settings(), create=False)
    credentials = settings.admin_credentials()
    return credentials if credentials is not None else (settings.admin_email, "")
