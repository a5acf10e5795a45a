"""The state ``up`` leaves in ``.marketplace/``: settings, ``runtime.json`` and ``up.lock``.

``up`` writes runtime.json (the non-secret facts that let another process route to it) and holds
up.lock while it starts and runs; ``seed`` and ``audit`` read both to join it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from marketplace.cli.output import CliError, err_console
from marketplace.config import ACTOR_COUNTS, Durability, Settings, Topology, mask_url, to_async_url
from marketplace.local_secrets import with_local_secrets

RAY_AUTH_MODE = "RAY_AUTH_MODE"
RUNTIME_FILE = "runtime.json"
LOCK_FILE = "up.lock"


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the options that were given on top, and the
    secrets the environment does not set from ``.marketplace/secrets.json``
    (``marketplace.local_secrets``)."""
    return settings_and_new_secrets(**overrides)[0]


def settings_and_new_secrets(**overrides: Any) -> tuple[Settings, list[str]]:
    """``settings_from``, and the names of the secrets generated just now (``up`` prints
    them once)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise CliError(f"invalid settings: {exc}", code=2) from None
    try:
        return with_local_secrets(settings, create=True)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot keep the generated secrets: {exc}", code=2) from None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runtime(state_dir: Path) -> dict[str, Any] | None:
    """The contents of runtime.json, or None when absent or unreadable."""
    try:
        data = json.loads((state_dir / RUNTIME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running(state_dir: Path) -> dict[str, Any] | None:
    """runtime.json of a marketplace that runs now (its pid is alive), else None."""
    data = read_runtime(state_dir)
    if data is None:
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not _pid_alive(pid):
        return None
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically, readable by the owner only."""
    scratch = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    scratch.replace(path)


def remove_runtime_file(path: Path) -> None:
    """Delete runtime.json if this process wrote it (a newer ``up`` may have replaced it)."""
    data = read_runtime(path.parent)
    if data is not None and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def _has_password(url: str) -> bool:
    try:
        return bool(make_url(url).password)
    except Exception:
        return False


def runtime_info(
    settings: Settings, started_ray: bool, gateway: dict[str, Any] | None
) -> dict[str, Any]:
    """The non-secret facts that let another process find and route to this marketplace."""
    import ray

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(),
        "ray_address": ray.get_runtime_context().gcs_address,
        "started_ray": started_ray,
        "ray_cpus": ray.cluster_resources().get("CPU"),  # type: ignore[no-untyped-call]
        # Ray >= 2.5x turns token auth on for a cluster ray.init() starts, but a process that
        # joins by address only sends the token (~/.ray/auth_token) when told to.
        "ray_auth_mode": os.environ.get(RAY_AUTH_MODE),
        "namespace": settings.namespace,
        "durability": settings.durability.value,
        "topology": settings.topology.value,
        "counts": settings.actor_counts(),
        "actor_num_cpus": settings.actor_num_cpus,
        "database_url": mask_url(settings.database_url),
        "database_url_masked": _has_password(settings.database_url),
        "gateway": gateway,
    }


def join_settings(base: Settings, running: dict[str, Any]) -> Settings:
    """Settings that route exactly as the running marketplace does."""
    recorded = str(running.get("database_url") or "")
    if base.database_url:
        url = base.database_url
        if recorded and mask_url(to_async_url(url)) != recorded:
            err_console.print(
                f"[yellow]warning:[/] MARKETPLACE_DATABASE_URL ({mask_url(url)}) is not the "
                f"running marketplace's database ({recorded})",
                soft_wrap=True,
                highlight=False,
            )
    elif recorded and not running.get("database_url_masked"):
        url = recorded
    else:
        raise CliError(
            "the running marketplace's database URL holds a password, which runtime.json does "
            "not record: set MARKETPLACE_DATABASE_URL to join it"
        )
    counts = running.get("counts") or {}
    try:
        return Settings(
            database_url=url,
            ray_address=running["ray_address"],
            namespace=running["namespace"],
            durability=Durability(running["durability"]),
            # A runtime.json from before the setting: the only topology there was then.
            topology=Topology(running.get("topology", Topology.DISTRIBUTED.value)),
            actor_num_cpus=running.get("actor_num_cpus", base.actor_num_cpus),
            **{name: counts[name] for name in ACTOR_COUNTS if name in counts},
        )
    except (KeyError, ValueError, ValidationError) as exc:
        raise CliError(f"runtime.json is not usable ({exc}); is the marketplace healthy?") from None


@contextlib.contextmanager
def up_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``.marketplace/up.lock`` so two ``up`` in one directory never race at start-up."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: runtime.json is the only guard
        yield
        return
    path = state_dir / LOCK_FILE
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise CliError(
                f"a marketplace is already running (pid {holder}, still starting) in "
                f"{state_dir.parent}; stop it first (Ctrl+C in its terminal, or kill -INT "
                f"{holder})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def starting_pid(state_dir: Path) -> str | None:
    """The pid of an ``up`` that holds the lock here (it runs or is starting), else None."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    path = state_dir / LOCK_FILE
    if not path.is_file():
        return None
    with path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return handle.read().strip() or "?"
        return None  # closing the file releases the probe's lock
