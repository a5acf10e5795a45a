"""HAProxy processes a ``marketplace up`` left behind, found and stopped.

Serve's HAProxy ingress runs ``haproxy -db -f <config>`` as a child of Serve's proxy actor.
When every process of ``up``'s group is sent SIGTERM at once (systemd, ``kill -- -PGID``), the
actor's worker can die before it stops its HAProxy, which then keeps the HTTP port: HAProxy
dies with neither its parent nor Ray. ``up`` therefore points Serve's HAProxy config file
into its own state directory, so that this runtime's HAProxy processes are recognisable by
their command line, and stops any it finds when it ends and before it starts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

CONFIG_ENV = "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"
STOP_WAIT_S = 5.0


def haproxy_config_dir(state_dir: Path) -> Path:
    """Where ``up`` has Serve write its HAProxy config (Serve adds a folder per node)."""
    return state_dir / "haproxy"


def point_haproxy_config(state_dir: Path) -> None:
    """Have Serve put its HAProxy config under ``state_dir`` (before Ray starts; an explicit
    RAY_SERVE_HAPROXY_CONFIG_FILE_LOC wins)."""
    folder = haproxy_config_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(CONFIG_ENV, str(folder / "haproxy.cfg"))


def _config_of(argv: list[str]) -> str | None:
    """The ``-f`` argument of an haproxy command line (None for any other program)."""
    if not argv or "haproxy" not in os.path.basename(argv[0]):
        return None
    for flag, value in itertools.pairwise(argv):
        if flag == "-f":
            return value
    return None


def haproxy_leftovers(state_dir: Path) -> list[int]:
    """Pids of running haproxy processes whose config lies under this state directory."""
    folder = str(haproxy_config_dir(state_dir.resolve())) + os.sep
    found: list[int] = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        config = _config_of([part.decode(errors="replace") for part in raw.split(b"\0") if part])
        if config is not None and os.path.abspath(config).startswith(folder):
            found.append(int(entry.name))
    return sorted(found)


def stop_leftovers(state_dir: Path) -> list[int]:
    """Stop this state directory's haproxy processes (SIGTERM, then SIGKILL after a few
    seconds); returns the pids that were running."""
    pids = haproxy_leftovers(state_dir)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    # A child of ours that exited stays a zombie until reaped; HAProxy is Serve's child, not
    # ours, so a zombie here is reaped by init soon, and counts as gone.
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"
