"""Execute every notebook in ``notebooks/`` top to bottom; a failing cell fails the test.

Each notebook runs in a fresh ipykernel on this interpreter (the project's virtualenv), in a
temporary working directory, and joins the test session's Ray through ``RAY_ADDRESS`` instead of
starting its own. Each notebook takes its parameters from one cell tagged ``parameters``; here
they get shorter loads (``QUICK``) than in their committed outputs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300

# Prepended to every notebook (in memory only): the kernel must be this interpreter, in this
# virtualenv, and must see the session's Ray address.
CHECK_KERNEL = """\
import os, sys
assert sys.executable == {executable!r}, sys.executable
assert sys.prefix == {prefix!r}, sys.prefix
assert os.environ.get("RAY_ADDRESS") == {address!r}, os.environ.get("RAY_ADDRESS")
"""


# Quick parameters for the test run, papermill's way: each notebook keeps every knob in one code
# cell tagged `parameters`, and the in-memory copy that runs here gets a cell right after it that
# assigns these values (tagged `injected-parameters`, as papermill tags its own). Each name must
# be assigned in the parameters cell (else the test fails, rather than quietly running the full
# load). Every cell and every assert still runs; only the loads shrink. The committed notebooks
# and their outputs keep the full parameters.
QUICK: dict[str, dict[str, Any]] = {
    "01_quickstart.ipynb": {"DURATION_S": 5.0},
    # the same seven faults in a shorter run, closer together (their windows may overlap)
    "02_fault_tolerance.ipynb": {
        "RUN_S": 13.0,
        "SETTLE_S": 30.0,
        "PLAN": {
            "name": "notebook-02-quick",
            "fault": [
                {"kind": "kill_actor", "actor": "inventory", "at": 2.5},
                {"kind": "payments", "at": 3.5, "duration": 1.5, "error_rate": 0.5},
                {"kind": "kill_actor", "actor": "orders", "at": 5.0},
                {
                    "kind": "calls",
                    "from": "orders",
                    "to": "inventory",
                    "at": 6.5,
                    "duration": 1.5,
                    "drop_rate": 0.3,
                },
                {"kind": "kill_actor", "actor": "payments", "at": 8.0},
                {
                    "kind": "calls",
                    "from": "orders",
                    "to": "payments",
                    "at": 9.5,
                    "duration": 1.5,
                    "drop_rate": 0.3,
                    "lose": "reply",
                },
                {"kind": "sqlite_lock", "at": 11.0, "duration": 1.5},
            ],
        },
    },
    # three levels of the sweep (the busiest still last), 1.5 s each instead of 3
    "03_latency_and_load.ipynb": {"LEVELS": [1, 8, 32], "SECONDS": 1.5, "WARMUP_S": 1.0},
    # the same two crashes in a shorter run, the last still 1.5 s before its end; throughput
    # over the 2 s before the first (the asserts are on the sync run's orders and audit)
    "04_durability_under_crashes.ipynb": {
        "RUN_S": 4.5,
        "KILLS": [(2.0, "inventory-0"), (3.0, "orders-0")],
        "SETTLE_S": 2.0,
    },
    # one actor per kind, spread and hot, 2 s each: every point starts a marketplace of its own,
    # whose actor processes cost more than the runs (the experiment CLI tests cover a sweep)
    "05_scaling.ipynb": {"SECONDS": 2.0, "ACTORS": [1], "HOT_ACTORS": 1},
    # the three modes with one replica per shard, 3 s each (every point starts a marketplace);
    # eventual still reads stale with that many users, which the notebook asserts
    "06_consistency.ipynb": {
        "SECONDS": 3.0,
        "AGENTS": 8,
        "PRODUCTS": 30,
        "BUYERS": 30,
        "REPLICAS": [1],
    },
    # a shorter surge, still long enough for Serve to ask for a second gateway replica; a lower
    # target, since a fast machine keeps up with the surge with under two requests in flight
    "07_autoscaling.ipynb": {
        "RATE_STEPS": [(0.0, 5.0), (5.0, 80.0), (20.0, 5.0)],
        "DURATION_S": 25.0,
        "TARGET_ONGOING": 0.5,
    },
    # shorter runs with fewer buyers, still enough at once for batches to form
    "08_latency_anatomy.ipynb": {"SECONDS": 2.0, "WARMUP_S": 1.0, "BUSY_USERS": 16},
}


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    """The index of the notebook's one code cell tagged ``parameters``."""
    found = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])
    ]
    assert len(found) == 1, f"{len(found)} cells tagged 'parameters'; the notebook needs one"
    return found[0]


def inject(nb: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Insert a cell assigning ``values`` right after the parameters cell (as papermill does);
    each name must be assigned in the parameters cell."""
    index = parameters_cell(nb)
    assigned = {
        target.id
        for node in ast.parse(nb.cells[index].source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    unknown = set(values) - assigned
    assert not unknown, f"{sorted(unknown)} not set in the parameters cell; update QUICK"
    cell = new_code_cell("\n".join(f"{name} = {value!r}" for name, value in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)


def kernel_manager() -> AsyncKernelManager:
    """A manager for the ``python3`` kernel that launches ``sys.executable``.

    With no kernel directories, ``python3`` resolves to ipykernel's built-in spec, whose command
    is this interpreter; a ``python3`` kernelspec installed elsewhere (user or system
    directories) cannot shadow it.
    """
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)


def project_installed() -> bool:
    """Whether the project is installed (``pip install -e .``), so any process can import it."""
    try:
        importlib.metadata.distribution("marketplace")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def kernel_env(ray_address: str) -> dict[str, str]:
    """The kernel's environment: join the session's Ray; import the project from this checkout."""
    env = dict(os.environ)  # carries RAY_AUTH_MODE too, which joining the session's Ray needs
    env["RAY_ADDRESS"] = ray_address
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not project_installed():
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
        )
        # Ray workers put only the driver's working directory (here a temporary one) on their
        # sys.path and do not inherit the kernel's PYTHONPATH: hand the notebook's Ray job a
        # runtime env that does, the way `ray job submit` hands one to its driver.
        env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps(
            {"runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT)}}}
        )
    return env


def test_notebooks_found() -> None:
    """The glob below must not silently parametrize over nothing."""
    assert NOTEBOOKS, f"no notebooks under {ROOT / 'notebooks'}"
    assert set(QUICK) <= {p.name for p in NOTEBOOKS}, "QUICK names a notebook that is gone"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_with_parameters_and_outputs(path: Path) -> None:
    """Each notebook has its parameters cell and is committed executed top to bottom, in order,
    with no error: it reads on a code host before anyone runs it."""
    nb = nbformat.read(path, as_version=4)
    parameters_cell(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.get("execution_count") for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"not executed in order: {counts}"
    for cell in code:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output.get("ename")
            assert "Traceback" not in output.get("text", ""), cell.source[:80]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
async def test_notebook_runs(path: Path, ray_address: str, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    inject(nb, QUICK.get(path.name, {}))
    check = CHECK_KERNEL.format(executable=sys.executable, prefix=sys.prefix, address=ray_address)
    nb.cells.insert(0, new_code_cell(check))
    client = NotebookClient(
        nb,
        km=kernel_manager(),
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        await client.async_execute(env=kernel_env(ray_address))
    finally:
        # Keep what ran, outputs included, next to the test's files for a post-mortem.
        nbformat.write(nb, tmp_path / path.name)
