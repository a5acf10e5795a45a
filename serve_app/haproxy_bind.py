"""Run HAProxy with its stats and Prometheus listeners on the gateway's host.

Serve's HAProxy config (Ray 2.60, ``ray/serve/_private/haproxy_templates.py``) binds those two
listeners on every interface, ``bind *:PORT`` and ``bind :PORT``, whatever the gateway's host,
and has no setting for it. It does let the HAProxy binary be chosen
(``RAY_SERVE_HAPROXY_BINARY_PATH``), so ``serve_app.serving.prepare_haproxy`` points it at a
small wrapper that runs this script: it rewrites those binds in the config Serve passes (``-f``)
to the host, then becomes the real HAProxy (``exec``: same process, same signals, so Serve's
reloads and stops work as before). Listeners already bound to an address are left alone.

A script of the standard library only: the wrapper runs it with the gateway's Python, but not
necessarily with this project importable.

    python haproxy_bind.py REAL_HAPROXY HOST [haproxy arguments ...]
"""

from __future__ import annotations

import itertools
import os
import re
import sys

# "bind *:8404", "bind :9101" (and with options after the port); not "bind 127.0.0.1:8000".
_ANY_INTERFACE = re.compile(r"^(?P<indent>\s*bind\s+)\*?:(?P<port>\d+)", re.MULTILINE)


def bound_to(config: str, host: str) -> str:
    """``config`` with every listener bound on all interfaces bound on ``host`` instead."""
    address = f"[{host}]" if ":" in host else host  # an IPv6 address takes brackets
    return _ANY_INTERFACE.sub(rf"\g<indent>{address}:\g<port>", config)


def config_path(args: list[str]) -> str | None:
    """The file HAProxy is told to read (``-f PATH``), if any."""
    for flag, value in itertools.pairwise(args):
        if flag == "-f":
            return value
    return None


def main(argv: list[str]) -> int:
    """Rewrite the config named in the HAProxy arguments, then exec the real HAProxy."""
    if len(argv) < 2:
        print("usage: haproxy_bind.py REAL_HAPROXY HOST [haproxy arguments ...]", file=sys.stderr)
        return 2
    real, host, args = argv[0], argv[1], argv[2:]
    path = config_path(args)
    if path is not None and host not in ("", "0.0.0.0", "::"):
        with open(path, encoding="utf-8") as file:
            config = file.read()
        rewritten = bound_to(config, host)
        if rewritten != config:
            # Written whole and renamed over: a reader never sees half a config.
            with open(path + ".bind", "w", encoding="utf-8") as file:
                file.write(rewritten)
            os.replace(path + ".bind", path)
    os.execv(real, [real, *args])
    return 1  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
