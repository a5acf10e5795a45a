"""The smoke load scenario against the local cluster, run as ``python -m load.cli`` would be
from a shell (the cluster's own settings are kept out of its environment)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cluster.local.processes import log
from cluster.local.state import LocalCluster


def smoke(cluster: LocalCluster, duration_s: float | None = None) -> int:
    """The smoke scenario (``python -m load.cli``): exit 0 when its SLOs and the audit pass."""
    report = Path(cluster.base) / "reports" / f"smoke-{int(time.time())}"
    command = [
        sys.executable,
        "-m",
        "load.cli",
        "--scenario",
        "smoke",
        "--host",
        cluster.url,
        "--manifest",
        "none",
        "--report-dir",
        str(report),
        "--admin-email",
        cluster.admin_email,
        "--admin-password",
        cluster.admin_password,
        "--quiet",
    ]
    if duration_s is not None:
        command += ["--duration", str(duration_s)]
    log("smoke load: " + " ".join(command[2:]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLACE_")}
    done = subprocess.run(command, env=env, check=False, timeout=600)
    log(f"smoke load exit {done.returncode}; report {report}")
    return done.returncode
