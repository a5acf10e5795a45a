"""CPU time of the marketplace's processes, grouped by what they are, for per-operation figures.

A benchmark samples before and after its measured run and divides the difference by the
operations it ran: "CPU milliseconds per checkout, by actor kind" shows where a request's cost
goes, which wall-clock throughput on a shared two-core machine cannot. Only processes on this
host can be read; actors on other nodes of a cluster are left out (and said to be). The share of
the whole machine that was busy (``machine_cpu_times``, ``busy_share``) tells whether a figure
was limited by the CPUs at all.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil

DRIVER = "driver (this process)"
RAY_SYSTEM = "ray (raylet, gcs)"
_RAY_SYSTEM_NAMES = frozenset({"raylet", "gcs_server"})


@dataclass
class CpuMeter:
    """Reads the CPU seconds (user + system) of a fixed set of labelled processes."""

    labels: dict[int, str]
    remote: int = 0  # actors that live on another host and are not counted

    def sample(self) -> dict[str, float]:
        """CPU seconds so far, summed per label (a process that is gone counts as 0)."""
        totals = dict.fromkeys(self.labels.values(), 0.0)
        for pid, label in self.labels.items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                totals[label] += times.user + times.system
        return totals


def meter_for(
    identities: Iterable[Mapping[str, Any]], *, extra: Mapping[int, str] | None = None
) -> CpuMeter:
    """A meter over the actors in ``identities`` (``MarketplaceClient.ready()``), this process
    and Ray's own daemons; ``extra`` labels more processes (a gateway's replicas)."""
    host = socket.gethostname()
    labels: dict[int, str] = {}
    remote = 0
    for identity in identities:
        if identity.get("host") == host and "pid" in identity:
            pid, kind = int(identity["pid"]), str(identity["kind"])
            # In the colocated topology one process (a cell) answers for several roles.
            labels[pid] = kind if labels.get(pid, kind) == kind else "Cell (colocated roles)"
        else:
            remote += 1
    labels.update(extra or {})
    labels[os.getpid()] = DRIVER
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in _RAY_SYSTEM_NAMES:
            labels[process.pid] = RAY_SYSTEM
    return CpuMeter(labels, remote)


_RAY_HELPERS = ("dashboard", "log_monitor", "monitor.py", "DashboardAgent", "RuntimeEnvAgent")


def role_of(title: str, name: str) -> str | None:
    """What a process on this host is to a running marketplace, from its title; None: unrelated.

    Ray titles its workers ``ray::<Actor>`` (``ray::<Actor>.<method>`` while a method runs) and
    Serve its replicas ``ray::ServeReplica:<app>:<deployment>``.
    """
    if name in _RAY_SYSTEM_NAMES:
        return RAY_SYSTEM
    if name == "haproxy":
        return "haproxy"
    if title.startswith("ray::ServeReplica:"):
        # ray::ServeReplica:<app>:<deployment>, with ".<method>" while a method runs
        return title.rsplit(":", 1)[-1].split()[0].split(".")[0] + " replicas"
    if title.startswith("ray::"):
        actor = title[len("ray::") :].split()[0].split(".")[0]
        if actor in _RAY_HELPERS:
            return "ray (dashboard, agents)"
        if actor == "ProxyActor":  # the HTTP proxy itself, unless HAProxy is the ingress
            return "serve proxy (ProxyActor)"
        if actor in ("ServeController", "HAProxyManager"):
            return "serve (controller, HAProxy manager)"
        return actor or None
    # The gateway benchmark's own subprocesses (marketplace.bench.gateway)
    if "bench.gateway --_load" in title:
        return "load generator"
    if "bench.gateway --_serve" in title:
        return "driver (Ray head process)"
    if "ray/dashboard" in title or "log_monitor" in title or "autoscaler" in title:
        return "ray (dashboard, agents)"
    return None


def meter_for_host() -> CpuMeter:
    """A meter over every process on this host that belongs to a running marketplace."""
    labels: dict[int, str] = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(process.info["cmdline"] or ())
            role = role_of(title, process.info["name"] or "")
            if role is not None:
                labels[process.pid] = role
    return CpuMeter(labels)


def per_operation_ms(
    before: Mapping[str, float], after: Mapping[str, float], operations: int
) -> dict[str, float]:
    """Milliseconds of CPU per operation for each label, largest first."""
    if operations < 1:
        return {}
    spent = {label: 1000 * (after.get(label, 0.0) - before.get(label, 0.0)) for label in after}
    return dict(sorted(((k, v / operations) for k, v in spent.items()), key=lambda kv: -kv[1]))


class CpuWindow:
    """CPU seconds spent by each process role on this host between two wall-clock times."""

    def __init__(self, start: float, end: float) -> None:
        self._spent: dict[str, float] | None = None
        self._thread = threading.Thread(target=self._run, args=(start, end), daemon=True)
        self._thread.start()

    def _run(self, start: float, end: float) -> None:
        time.sleep(max(0.0, start - time.time()))
        meter = meter_for_host()  # the processes alive when the window opens
        before = meter.sample()
        time.sleep(max(0.0, end - time.time()))
        after = meter.sample()
        self._spent = {role: after[role] - before.get(role, 0.0) for role in after}

    def result(self) -> dict[str, float] | None:
        """The seconds by role (None if the window could not be measured)."""
        self._thread.join(timeout=5)
        return self._spent


def machine_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [float(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields[:8])
    return total - idle, total


def busy_share(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    """The share (0..1) of all CPUs that were busy between two ``machine_cpu_times``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
