"""This machine's processes and ports, as the rehearsal uses them, and its progress log."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path


def log(message: str) -> None:
    """One progress line, stamped with the time (flushed: a test's output interleaves it)."""
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on this machine right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tool(name: str) -> str:
    """An executable of this interpreter's environment (ray, serve), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def kill_tree(*pids: int, graceful_s: float = 0.0) -> int:
    """Signal processes, everything under them and their process groups (each node runs in a
    session of its own, which also holds what was re-parented to init); returns how many.

    With ``graceful_s`` they get SIGTERM first and that long to exit, then SIGKILL.
    """
    import psutil

    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in (root, *root.children(recursive=True)):
                procs[proc.pid] = proc
    groups = set(pids)
    for proc in psutil.process_iter():
        if proc.pid not in procs and _pgid(proc.pid) in groups:
            procs[proc.pid] = proc
    remaining = list(procs.values())
    if graceful_s > 0:
        for proc in remaining:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, remaining = psutil.wait_procs(remaining, timeout=graceful_s)
    for proc in remaining:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(remaining, timeout=10)
    return len(procs)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None
