"""Execute every notebook in ``notebooks/`` top to bottom; a failing cell fails the test.

Each notebook runs in a fresh ipykernel on this interpreter (the project's virtualenv), in a
temporary working directory, and joins the test session's Ray through ``RAY_ADDRESS`` instead of
starting its own. The longer notebooks run shorter loads here than in their committed outputs
(``QUICK``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

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


# Shorter loads for the test run. Papermill would inject parameters after a tagged cell, but
# these notebooks set theirs in the cells that use them; so each line on the left must appear
# exactly once, as written, in its notebook's code (else the test fails, rather than quietly
# running the full load), and the in-memory copy that runs here gets the line on the right.
# Every cell and every assert still runs; only the durations (and, in 05, the measured
# checkouts) shrink. The committed notebooks and their outputs keep the full runs.
QUICK: dict[str, dict[str, str]] = {
    # three kills, each back in about 2.5 s, still 4.5 s apart (they never overlap anyway: the
    # schedule waits for each killed actor to answer again before the next kill)
    "02_fault_tolerance.ipynb": {
        "RUN_S = 30.0": "RUN_S = 16.0",
        'KILLS = [(4.0, "inventory-0"), (13.0, "orders-0"), (22.0, "payments-0")]': (
            'KILLS = [(3.0, "inventory-0"), (7.5, "orders-0"), (12.0, "payments-0")]'
        ),
    },
    # every level of the sweep still runs, 2 s each instead of 4
    "03_latency_and_load.ipynb": {"SECONDS = 4.0": "SECONDS = 2.0"},
    # the same two crashes in a shorter run; throughput still over the 4 s before the first
    "04_consistency_and_durability.ipynb": {
        "RUN_S = 12.0": "RUN_S = 8.0",
        'KILLS = [(4.0, "inventory-0"), (8.0, "orders-0")]': (
            'KILLS = [(4.0, "inventory-0"), (6.0, "orders-0")]'
        ),
    },
    # the four configurations, each with its warm-up, 200 measured checkouts instead of 400
    "05_scaling.ipynb": {"ORDERS = 400": "ORDERS = 200"},
}


def shorten(nb: nbformat.NotebookNode, replacements: dict[str, str]) -> None:
    """Replace whole lines of ``nb``'s code cells; each must occur exactly once."""
    for old, new in replacements.items():
        found = 0
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            lines = cell.source.split("\n")
            found += lines.count(old)
            cell.source = "\n".join(new if line == old else line for line in lines)
        assert found == 1, f"{old!r} occurs {found} times in the notebook; update QUICK"


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
async def test_notebook_runs(path: Path, ray_address: str, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    shorten(nb, QUICK.get(path.name, {}))
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
