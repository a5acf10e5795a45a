"""The ingress choice sets Serve's HAProxy environment before Ray starts."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from marketplace.config import Settings
from serve_app import haproxy_bind
from serve_app.serving import (
    HAPROXY_BINARY,
    HAPROXY_FILES,
    HAPROXY_FLAG,
    HAPROXY_METRICS_FLAG,
    HAPROXY_PORT_SETTINGS,
    HAPROXY_PORTS,
    WRAPPER,
    choose_ingress,
)

pytestmark = pytest.mark.unit

PORTS = HAPROXY_PORT_SETTINGS


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (HAPROXY_METRICS_FLAG, HAPROXY_BINARY, *PORTS, *HAPROXY_FILES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(HAPROXY_FLAG, "1")
    return monkeypatch


def test_serves_request_metrics_stay_in_the_replicas_under_haproxy(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert choose_ingress(Settings()) == "haproxy"
    assert os.environ[HAPROXY_METRICS_FLAG] == "0"
    ports = [int(os.environ[name]) for name in PORTS]
    # HAProxy's stats and Prometheus listeners and the Python proxy it falls back to: none at
    # Serve's fixed defaults, which a second Serve on the machine would share or be refused.
    assert {"RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"} <= set(
        PORTS
    )
    assert len(set(ports)) == len(PORTS) == 4
    assert not {8404, 9101, 8500, 9500} & set(ports)
    # Outside the kernel's range for outgoing connections, which could take them first.
    assert all(port in HAPROXY_PORTS for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))


def test_an_explicit_environment_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(HAPROXY_METRICS_FLAG, "1")
    clean_env.setenv(PORTS[0], "18404")
    choose_ingress(Settings())
    assert os.environ[HAPROXY_METRICS_FLAG] == "1"
    assert os.environ[PORTS[0]] == "18404"


def test_the_python_proxy_leaves_haproxy_alone(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(HAPROXY_FLAG, "0")
    assert choose_ingress(Settings()) == "python"
    assert HAPROXY_METRICS_FLAG not in os.environ


def test_each_serve_gets_a_private_folder_for_haproxys_files(clean_env: pytest.MonkeyPatch) -> None:
    # Serve's defaults are fixed paths under /tmp that a second Serve on the machine shared.
    choose_ingress(Settings())
    first = {name: os.environ[name] for name in HAPROXY_FILES}
    folder = Path(first["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"])
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(Path(path).parent == folder for name, path in first.items() if path != str(folder))
    assert len(set(first.values())) == len(HAPROXY_FILES)
    for name in HAPROXY_FILES:
        clean_env.delenv(name)
    choose_ingress(Settings())
    second = Path(os.environ["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"])
    assert second != folder
    for private in (folder, second):
        (private / WRAPPER).unlink(missing_ok=True)  # the second gateway reuses the first's
        private.rmdir()


def test_haproxy_files_set_by_the_caller_are_kept_and_the_rest_made_private(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # As `marketplace up` does: its config in the state directory; the admin socket must not
    # fall back to Serve's /tmp/haproxy-serve, where any local user reaches it.
    clean_env.setenv("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "/srv/haproxy/haproxy.cfg")
    choose_ingress(Settings())
    assert os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"] == "/srv/haproxy/haproxy.cfg"
    private = Path(os.environ["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert Path(os.environ["RAY_SERVE_HAPROXY_SOCKET_PATH"]).parent == private
    (private / WRAPPER).unlink(missing_ok=True)
    private.rmdir()


# Serve's template (Ray 2.60) as it renders the two listeners, and the gateway's own frontend.
SERVE_CONFIG = """frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind 127.0.0.1:8000
listen stats
  bind *:8404
  stats enable
"""


def test_haproxys_listeners_on_every_interface_are_bound_on_the_gateways_host() -> None:
    rewritten = haproxy_bind.bound_to(SERVE_CONFIG, "127.0.0.1")
    assert "    bind 127.0.0.1:9101\n" in rewritten
    assert "  bind 127.0.0.1:8404\n" in rewritten
    assert rewritten.count("bind 127.0.0.1:8000") == 1  # bound to an address already: kept
    assert haproxy_bind.bound_to("  bind *:8404 ssl\n", "::1") == "  bind [::1]:8404 ssl\n"


def test_serves_own_template_has_no_listener_left_on_every_interface() -> None:
    # If Serve's template grows a listener written another way, this says so.
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    rendered = re.sub(r"\{\{ config\.\w+_port \}\}", "9999", HAPROXY_CONFIG_TEMPLATE)
    rewritten = haproxy_bind.bound_to(rendered, "127.0.0.1")
    binds = [line.strip() for line in rewritten.splitlines() if line.strip().startswith("bind ")]
    assert binds and not any(b.startswith(("bind *", "bind :")) for b in binds), binds
    assert binds.count("bind 127.0.0.1:9999") == 2  # stats and Prometheus


def test_the_wrapper_rewrites_the_config_then_runs_the_real_haproxy(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # "The real HAProxy" here prints what it was given, and the config it reads.
    real = tmp_path / "fake-haproxy"
    real.write_text('#!/bin/sh\necho "args: $*"\ncat "$3"\n')
    real.chmod(0o700)
    clean_env.setenv(HAPROXY_BINARY, str(real))
    choose_ingress(Settings(http_host="127.0.0.1"))
    wrapper = Path(os.environ[HAPROXY_BINARY])
    assert wrapper.name == WRAPPER and wrapper.parent != tmp_path
    config = tmp_path / "haproxy.cfg"
    config.write_text(SERVE_CONFIG)
    ran = subprocess.run(
        [str(wrapper), "-db", "-f", str(config), "-sf", "123"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.startswith(f"args: -db -f {config} -sf 123\n")
    assert "bind 127.0.0.1:8404" in ran.stdout and "bind *:" not in ran.stdout
    assert config.read_text() == haproxy_bind.bound_to(SERVE_CONFIG, "127.0.0.1")
    # Chosen again in the same process (a second gateway): the wrapper is not wrapped.
    choose_ingress(Settings(http_host="127.0.0.1"))
    assert Path(os.environ[HAPROXY_BINARY]) == wrapper


def test_a_gateway_on_every_interface_runs_serves_haproxy_as_is(
    clean_env: pytest.MonkeyPatch,
) -> None:
    choose_ingress(Settings(http_host="0.0.0.0", jwt_secret="x" * 40, admin_password="y" * 20))
    assert HAPROXY_BINARY not in os.environ
