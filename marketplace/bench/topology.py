"""Start-up of a marketplace in each topology: ``distributed`` against ``colocated``.

On one local Ray (started here, or ``RAY_ADDRESS``), starts and stops a fresh marketplace (its
own namespace and SQLite file, default counts unless given) ``--rounds`` times per topology,
the topologies alternating so that a change in the machine's load touches both alike. For
each start it prints the wall time of ``Runtime.start`` (schema, actors created, every role
loaded), how many processes hold the roles (distinct ``pid`` in ``client.ready()``) and the
CPU seconds those processes had used when they answered; then the medians.

    python -m marketplace.bench.topology [--rounds 3] [--set catalog_shards=2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from actors.runtime import Runtime
from marketplace.config import Settings, Topology


async def start_once(folder: Path, topology: Topology, overrides: dict[str, Any]) -> dict[str, Any]:
    """Start one marketplace, measure, stop it (its actors killed)."""
    settings = Settings(
        database_url=f"sqlite:///{folder / (uuid.uuid4().hex[:8] + '.db')}",
        namespace="bench" + uuid.uuid4().hex[:8],
        topology=topology,
        actor_num_cpus=0.01,
        **overrides,
    )
    runtime = Runtime(settings)
    began = time.perf_counter()
    client = await runtime.start()
    wall = time.perf_counter() - began
    try:
        pids = {info["pid"] for info in await client.ready()}
        cpu = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:  # on another node
                continue
            cpu += times.user + times.system
    finally:
        await runtime.stop()
    return {"topology": topology.value, "wall_s": wall, "processes": len(pids), "cpu_s": cpu}


async def main(rounds: int, overrides: dict[str, Any]) -> None:
    """Alternate the topologies ``rounds`` times; print each start and the medians."""
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=max(os.cpu_count() or 2, 4),
                include_dashboard=False,
                log_to_driver=False,
            )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):
            for topology in (Topology.DISTRIBUTED, Topology.COLOCATED):
                result = await start_once(Path(folder), topology, overrides)
                results.append(result)
                print(
                    f"round {round_ + 1} {result['topology']:>11}: start {result['wall_s']:6.2f} s,"
                    f" {result['processes']} role processes, {result['cpu_s']:6.2f} CPU s"
                    " in them",
                    flush=True,
                )
    print("medians:")
    for topology in Topology:
        mine = [r for r in results if r["topology"] == topology.value]
        print(
            f"  {topology.value:>11}: start {statistics.median(r['wall_s'] for r in mine):6.2f} s,"
            f" {mine[0]['processes']} role processes,"
            f" {statistics.median(r['cpu_s'] for r in mine):6.2f} CPU s in them"
        )


def cli() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for both topologies, e.g. inventory_partitions=2",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    asyncio.run(main(args.rounds, overrides))


if __name__ == "__main__":
    cli()
