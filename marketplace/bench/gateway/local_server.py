"""A throwaway local server for a baseline measurement: started, waited for, always stopped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def listening(
    argv: list[str], port: int, *, within_s: float, log: IO[str] | None = None, **popen: Any
) -> Iterator[bool]:
    """Run ``argv`` until the block ends; yields whether it accepted a connection on ``port``
    within ``within_s`` (False if it exited or did not listen in time)."""
    output = log if log is not None else subprocess.DEVNULL
    server = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, **popen)
    try:
        yield _wait_listening(server, port, within_s)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_listening(server: subprocess.Popen[Any], port: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
