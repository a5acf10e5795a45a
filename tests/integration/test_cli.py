"""The ``marketplace`` command, run for real in subprocesses, each in its own working directory.

Every command that touches the marketplace starts (or joins) its own Ray, so these tests keep
the number of such runs small: seed embedded then audit on the session's Ray, and up / up
again / seed joined.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from marketplace.cli import app

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 180  # a loaded two-CPU machine has needed over a minute to start Ray + actors
COMMAND_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60


def cli_env() -> dict[str, str]:
    """The test process's environment without any marketplace, Ray address or Serve ingress
    settings (the session's own Serve holds the HAProxy ports conftest reserved)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MARKETPLACE_", "RAY_SERVE_")) and key != "RAY_ADDRESS"
    }
    env.update(
        MARKETPLACE_RAY_NUM_CPUS="2",
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="200",  # keep rich from wrapping the lines the tests look for
        PYTHONUNBUFFERED="1",
    )
    return env


def marketplace(
    cwd: Path, *args: str, timeout: float = COMMAND_TIMEOUT_S, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m marketplace.cli ARGS`` in ``cwd`` (with ``env`` added) and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "marketplace.cli", *args],
        cwd=cwd,
        env={**cli_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


def test_seed_then_audit_on_an_embedded_marketplace(tmp_path: Path, ray_address: str) -> None:
    # seed starts its own Ray (the embedded path); audit, on the database seed left behind,
    # starts its actors on the session's Ray (MARKETPLACE_RAY_ADDRESS), which spares a second
    # Ray start and covers that path too.
    seeded = marketplace(
        tmp_path, "seed", "--sellers", "2", "--products", "12", "--buyers", "4", "--seed", "3"
    )
    assert seeded.returncode == 0, output(seeded)
    assert "started an in-process one" in seeded.stdout, output(seeded)
    manifest = json.loads((tmp_path / ".marketplace" / "seed.json").read_text())
    assert (len(manifest["sellers"]), len(manifest["products"]), len(manifest["buyers"])) == (
        2,
        12,
        4,
    )
    assert manifest["seed"] == 3
    weights = [p["weight"] for p in manifest["products"]]
    assert weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(1.0)
    assert not (tmp_path / ".marketplace" / "runtime.json").exists()

    audited = marketplace(
        tmp_path,
        "audit",
        "--json",
        MARKETPLACE_RAY_ADDRESS=ray_address,
        MARKETPLACE_NAMESPACE="cli-audit-" + tmp_path.name,
        MARKETPLACE_ACTOR_NUM_CPUS="0.01",
    )
    assert audited.returncode == 0, output(audited)
    joined = f"Started marketplace actors on the Ray cluster at {ray_address}"
    assert joined in audited.stderr, output(audited)
    report = json.loads(audited.stdout)
    assert report["ok"] is True
    # the seeded stock persisted in the database and the audit saw every product
    assert report["checks"]["I1_no_oversell"]["checked"] == 12, output(audited)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def running_up(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``marketplace up`` in the background in ``tmp_path``, stopped for sure afterwards."""
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketplace.cli",
            "up",
            "--catalog-shards",
            "1",
            "--port",
            str(_free_port()),
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def test_up_refuses_a_second_up_lets_seed_join_and_stops_on_sigint(
    tmp_path: Path, running_up: subprocess.Popen[str]
) -> None:
    runtime_file = tmp_path / ".marketplace" / "runtime.json"
    lock_file = tmp_path / ".marketplace" / "up.lock"
    up_log = tmp_path / "up.log"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (lock_file.exists() and lock_file.read_text().strip()):
        assert running_up.poll() is None, f"up exited early:\n{up_log.read_text()}"
        assert time.monotonic() < deadline, f"up never took its lock:\n{up_log.read_text()}"
        time.sleep(0.1)
    # A seed started while up is still starting must wait for it and join it, never start a
    # second marketplace on the same database (whose writes up's actors would never see).
    seed_args = ["seed", "--sellers", "1", "--products", "5", "--buyers", "2"]
    seeding = subprocess.Popen(
        [sys.executable, "-m", "marketplace.cli", *seed_args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not runtime_file.exists():
        assert running_up.poll() is None, f"up exited early:\n{up_log.read_text()}"
        assert time.monotonic() < deadline, f"no runtime.json yet:\n{up_log.read_text()}"
        time.sleep(0.5)
    info = json.loads(runtime_file.read_text())
    assert info["pid"] == running_up.pid
    assert info["counts"]["catalog_shards"] == 1
    assert info["ray_address"] and info["namespace"]

    second = marketplace(tmp_path, "up")
    assert second.returncode == 1, output(second)
    assert f"a marketplace is already running (pid {running_up.pid})" in second.stderr, output(
        second
    )

    out, err = seeding.communicate(timeout=COMMAND_TIMEOUT_S)
    seeded = subprocess.CompletedProcess(seeding.args, seeding.returncode, out, err)
    assert seeded.returncode == 0, output(seeded)
    assert f"Joined the running marketplace (pid {running_up.pid})" in seeded.stdout, output(seeded)
    # (Whether it had to wait depends on how fast up started; joining is what must hold, and
    # the products seen over HTTP below prove the seed reached up's own actors.)
    manifest = json.loads((tmp_path / ".marketplace" / "seed.json").read_text())
    assert len(manifest["products"]) == 5
    assert running_up.poll() is None, "seeding must leave the running marketplace up"

    text = up_log.read_text()
    assert "Marketplace is running" in text and "HTTP gateway: http://" in text, text
    gateway = info["gateway"]
    assert gateway["ingress"] in ("haproxy", "python")
    assert httpx.get(f"{gateway['url']}/v1/health", timeout=30).json() == {"status": "ok"}
    ready = httpx.get(f"{gateway['url']}/v1/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    found = httpx.get(f"{gateway['url']}/v1/products", params={"limit": 10}, timeout=30).json()
    assert len(found["items"]) == 5  # what seed just made, seen over HTTP
    # No configured secrets: up generated them, kept them owner-only, showed the password once,
    # and the admin logs in with it (and with nothing else: no default password).
    secrets_file = tmp_path / ".marketplace" / "secrets.json"
    assert secrets_file.stat().st_mode & 0o077 == 0
    password = json.loads(secrets_file.read_text())["admin_password"]
    assert f"admin@marketplace.local / {password}" in text and "shown once" in text, text
    for tried, status in ((password, 200), ("admin-password", 401)):
        login = httpx.post(
            f"{gateway['url']}/v1/auth/token",
            data={"username": "admin@marketplace.local", "password": tried},
            timeout=30,
        )
        assert login.status_code == status, login.text
    running_up.send_signal(signal.SIGINT)
    try:
        code = running_up.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"up did not stop within {STOP_TIMEOUT_S} s:\n{up_log.read_text()}")
    assert code == 0, up_log.read_text()
    assert not runtime_file.exists()
    assert "Marketplace stopped." in up_log.read_text()


@pytest.mark.parametrize("command", [[], ["up"], ["seed"], ["audit"]])
def test_help_of_every_command(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    for word in {
        (): ["up", "seed", "audit"],
        ("up",): ["--catalog-shards", "--durability"],
        ("seed",): ["--products", "--zipf", "--manifest"],
        ("audit",): ["--max-pending-age", "--json"],
    }[tuple(command)]:
        assert word in result.output


def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    result = marketplace(tmp_path, "--help", timeout=60)
    assert result.returncode == 0, output(result)
    assert "seed" in result.stdout and "audit" in result.stdout
    assert not (tmp_path / ".marketplace").exists()


UP_ARGS = ("--catalog-shards", "1", "--port")


def test_up_stopped_by_a_sigterm_to_its_whole_process_group_leaves_its_port_free(
    tmp_path: Path,
) -> None:
    """As systemd stops a service: SIGTERM to every process of the group at once, Ray's
    included. Serve's HAProxy, which no signal of that group reaches, must not outlive it."""
    from marketplace.cli.leftovers import haproxy_leftovers, stop_leftovers
    from serve_app.serving import port_free

    port = _free_port()
    state_dir = tmp_path / ".marketplace"
    up_log = tmp_path / "up.log"
    with up_log.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "marketplace.cli", "up", *UP_ARGS, str(port)],
            cwd=tmp_path,
            env={**cli_env(), "RAY_SERVE_ENABLE_HA_PROXY": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a service has
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (state_dir / "runtime.json").exists():
            assert proc.poll() is None, f"up exited early:\n{up_log.read_text()}"
            assert time.monotonic() < deadline, f"no runtime.json yet:\n{up_log.read_text()}"
            time.sleep(0.5)
        info = json.loads((state_dir / "runtime.json").read_text())
        assert info["gateway"]["ingress"] == "haproxy", info  # the project installs HAProxy
        assert haproxy_leftovers(state_dir), "up's HAProxy is not recognisable by its config"
        os.killpg(proc.pid, signal.SIGTERM)
        # up stops its HAProxy first, then Ray, whose GCS got the same SIGTERM: that part can
        # take a minute and is Ray's own. The port must come free without it; the finally
        # block ends the rest.
        deadline = time.monotonic() + START_TIMEOUT_S
        while haproxy_leftovers(state_dir) or not port_free("127.0.0.1", port):
            assert time.monotonic() < deadline, f"port {port} still taken:\n{up_log.read_text()}"
            time.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stop_leftovers(state_dir)  # whatever the outcome, leave no HAProxy behind
