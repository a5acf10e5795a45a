"""The ingress choice sets Serve's HAProxy environment before Ray starts."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from marketplace.config import Settings
from serve_app.serving import (
    HAPROXY_FILES,
    HAPROXY_FLAG,
    HAPROXY_METRICS_FLAG,
    HAPROXY_PORTS,
    choose_ingress,
)

pytestmark = pytest.mark.unit

PORTS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (HAPROXY_METRICS_FLAG, *PORTS, *HAPROXY_FILES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(HAPROXY_FLAG, "1")
    return monkeypatch


def test_serves_request_metrics_stay_in_the_replicas_under_haproxy(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert choose_ingress(Settings()) == "haproxy"
    assert os.environ[HAPROXY_METRICS_FLAG] == "0"
    ports = [int(os.environ[name]) for name in PORTS]
    assert len(set(ports)) == 2
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
    assert Path(os.environ["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"]) != folder
    folder.rmdir()
    Path(os.environ["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"]).rmdir()


def test_haproxy_files_set_by_the_caller_are_kept(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "/srv/haproxy/haproxy.cfg")
    choose_ingress(Settings())
    assert os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"] == "/srv/haproxy/haproxy.cfg"
    assert "RAY_SERVE_HAPROXY_SOCKET_PATH" not in os.environ
