"""The benchmarks' CPU accounting: which process is what, and milliseconds per operation."""

from __future__ import annotations

import os
import time

import pytest

from marketplace.bench.cpu import DRIVER, CpuMeter, meter_for, per_operation_ms, role_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("title", "name", "role"),
    [
        ("ray::ServeReplica:marketplace:Gateway", "python", "Gateway replicas"),
        ("ray::ServeReplica:marketplace:Auth", "python", "Auth replicas"),
        ("ray::OrderCoordinator", "python", "OrderCoordinator"),
        ("ray::OrderCoordinator.run_batch", "python", "OrderCoordinator"),
        ("ray::ServeReplica:marketplace:Gateway.handle_request", "python", "Gateway replicas"),
        ("ray::HAProxyManager", "python", "serve (controller, HAProxy manager)"),
        ("ray::ProxyActor", "python", "serve proxy (ProxyActor)"),
        ("ray::DashboardAgent", "python", "ray (dashboard, agents)"),
        ("/usr/bin/raylet --raylet_socket_name=x", "raylet", "ray (raylet, gcs)"),
        ("/opt/haproxy -db -f conf", "haproxy", "haproxy"),
        ("python -m marketplace.bench.gateway --_load", "python", "load generator"),
        ("/usr/lib/erlang/erts/bin/beam.smp -W w", "beam.smp", None),
        ("postgres: checkpointer", "postgres", None),
    ],
)
def test_processes_are_told_apart_by_their_titles(title: str, name: str, role: str | None) -> None:
    assert role_of(title, name) == role


def test_per_operation_ms_divides_what_each_role_spent() -> None:
    before = {"a": 1.0, "b": 2.0}
    after = {"a": 1.5, "b": 2.1, "c": 0.3}  # c appeared during the window
    spent = per_operation_ms(before, after, 100)
    assert spent == pytest.approx({"a": 5.0, "c": 3.0, "b": 1.0})
    assert list(spent) == ["a", "c", "b"]  # largest first
    assert per_operation_ms(before, after, 0) == {}


def test_a_meter_reads_this_process_and_ignores_actors_elsewhere() -> None:
    identities = [
        {"kind": "CatalogShard", "host": "another-node", "pid": 1},
        {"kind": "OrderCoordinator"},  # an actor too old to report where it runs
    ]
    meter = meter_for(identities)
    assert meter.remote == 2
    assert meter.labels[os.getpid()] == DRIVER
    before = meter.sample()
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:  # burn some CPU
        pass
    # /proc counts in clock ticks (10 ms), and 140.98 - 140.94 is just under 0.04 in floats.
    assert meter.sample()[DRIVER] - before[DRIVER] >= 0.08 - 1e-9


def test_a_process_that_is_gone_counts_as_nothing() -> None:
    meter = CpuMeter({2**22 + 12345: "ghost"})
    assert meter.sample() == {"ghost": 0.0}
