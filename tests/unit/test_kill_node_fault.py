"""The ``kill_node`` fault: parsed, described, and refused before a run unless the marketplace
runs on the local rehearsal cluster recorded here with a worker to spare (no Ray, no cluster:
the cluster's state file is written by hand, its nodes' processes are stand-ins)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.directory import Directory
from cluster.local.environment import driver_exports
from cluster.local.state import LocalCluster, NodeInfo, record_pointer
from marketplace.config import Settings
from marketplace.sim.faults.injectors import FaultContext, check_targets
from marketplace.sim.faults.plan import PlanError, parse_plan, schedule

pytestmark = pytest.mark.unit

GCS = "127.0.0.1:46379"


def drawn(**fields: Any) -> Any:
    plan = parse_plan({"name": "p", "fault": [{"kind": "kill_node", "at": 1, **fields}]})
    return schedule(plan, 10, {})


def context(ray_address: str | None = GCS) -> FaultContext:
    settings = Settings(database_url="sqlite:///x.db", ray_address=ray_address)
    return FaultContext(settings=settings, directory=Directory(settings))


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process standing in for a worker node's ``ray start``."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def record_cluster(base: Path, worker_pids: list[int]) -> None:
    cluster = LocalCluster(
        base=str(base),
        overlay="dev",
        gcs_port=int(GCS.rsplit(":", 1)[1]),
        dashboard_port=48265,
        http_port=48000,
        database_url="sqlite:///x.db",
        created_database=False,
        admin_email="admin@rehearsal.local",
        admin_password="x",
        env={},
        nodes=[
            NodeInfo(name="head", pid=worker_pids[0], temp_dir=str(base), log=str(base / "h")),
            *(
                NodeInfo(
                    name=f"worker{i}",
                    pid=pid,
                    temp_dir=str(base),
                    log=str(base / f"w{i}"),
                    resource=f"rehearsal_worker_{i}",
                )
                for i, pid in enumerate(worker_pids, start=1)
            ),
        ],
    )
    cluster.save()
    record_pointer(cluster)


def test_a_kill_node_fault_is_parsed_and_described() -> None:
    assert drawn().faults[0].describe() == "kill a worker node"
    assert drawn(node=2).faults[0].describe() == "kill worker2"
    assert drawn().faults[0].duration == 0  # a kill: instantaneous
    assert drawn().faults[0].fault.heal_timeout == 240
    with pytest.raises(PlanError, match=r"fault\[0\]\.node"):
        drawn(node=0)


def test_kill_node_is_refused_without_a_local_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlanError, match="no local rehearsal cluster recorded here"):
        check_targets(drawn(), context())


def test_kill_node_is_refused_when_the_marketplace_runs_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: int
) -> None:
    monkeypatch.chdir(tmp_path)
    record_cluster(tmp_path, [sleeper, sleeper])
    with pytest.raises(PlanError, match=f"MARKETPLACE_RAY_ADDRESS={GCS} \\(it is unset\\)"):
        check_targets(drawn(), context(ray_address=None))
    with pytest.raises(PlanError, match="must run on the local rehearsal cluster"):
        check_targets(drawn(), context(ray_address="127.0.0.1:6380"))


def test_kill_node_needs_a_live_worker_to_spare_and_a_node_that_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: int
) -> None:
    monkeypatch.chdir(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record_cluster(tmp_path, [sleeper, gone.pid])
    with pytest.raises(PlanError, match="1 live worker node"):
        check_targets(drawn(), context())
    record_cluster(tmp_path, [sleeper, sleeper])
    with pytest.raises(PlanError, match="node = 3, but the live workers are worker1, worker2"):
        check_targets(drawn(node=3), context())
    check_targets(drawn(node=2), context())
    check_targets(drawn(), context(ray_address=f"ray://{GCS}"))


def test_the_rehearsals_env_makes_a_shell_a_driver_that_kill_node_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: int
) -> None:
    monkeypatch.chdir(tmp_path)
    record_cluster(tmp_path, [sleeper, sleeper])
    cluster = LocalCluster.load(tmp_path / "state.json")
    cluster.env = {
        "MARKETPLACE_NAMESPACE": "rehearsal ns",  # quoted through the shell
        "MARKETPLACE_CATALOG_SHARDS": "2",
        "RAY_AUTH_MODE": "disabled",  # a node's, not a driver's setting
    }
    shell = subprocess.run(
        ["bash", "-c", 'eval "$EXPORTS"; env'],
        env={"EXPORTS": driver_exports(cluster), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    exported = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert exported["MARKETPLACE_NAMESPACE"] == "rehearsal ns"
    assert exported["MARKETPLACE_RAY_ADDRESS"] == GCS and "RAY_AUTH_MODE" not in exported
    settings = Settings(
        ray_address=exported["MARKETPLACE_RAY_ADDRESS"],
        namespace=exported["MARKETPLACE_NAMESPACE"],
        catalog_shards=int(exported["MARKETPLACE_CATALOG_SHARDS"]),
    )
    check_targets(drawn(), FaultContext(settings=settings, directory=Directory(settings)))
