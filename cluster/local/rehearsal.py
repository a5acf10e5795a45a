"""Rehearse the Kubernetes deployment on this machine: a head and N worker Ray nodes.

The same configuration as the cluster: an overlay is rendered with kustomize, its settings
ConfigMap becomes the environment of every Ray node (as the pods' ``envFrom``), the database is
prepared like the head pod's init container does (``serve_app.bootstrap``), and its
``serveConfigV2`` is deployed through the dashboard's REST API (the request ``serve deploy`` and
the KubeRay operator send). Only what a single machine forces differs, and is said below.

    python -m cluster.local.rehearsal up        # start head + 2 workers, deploy, wait until ready
    python -m cluster.local.rehearsal smoke     # the smoke load scenario (load/cli.py) against it
    python -m cluster.local.rehearsal status    # nodes and where the marketplace's actors live
    python -m cluster.local.rehearsal kill-worker 1   # the failure drill: SIGKILL one worker node
    python -m cluster.local.rehearsal upgrade   # the upgrade drill: redeploy changed, under load
    python -m cluster.local.rehearsal env       # export lines: this shell's commands drive it
    python -m cluster.local.rehearsal down      # stop every process it started, drop its database
    python -m cluster.local.rehearsal rehearse  # up, smoke, down

What differs from Kubernetes, because every node shares one machine:
- each node has its own ``--temp-dir`` and explicit free ports (GCS, dashboard, agents), and is
  started as its own process group, so one node can be killed without touching the others;
- the HTTP port is a free one on 127.0.0.1 (``http_options`` of the deployed config; the
  applications are deployed unchanged), and each worker's Serve proxy gets a port of its own
  (``RAY_SERVE_WORKER_PROXY_HTTP_PORT``: HAProxy cannot share one port between nodes); clients
  use the head's, as the Kubernetes Service would use any pod's;
- token authentication is off (``RAY_AUTH_MODE=disabled``): the nodes listen on this machine's
  own addresses only;
- the database is a fresh PostgreSQL database on 127.0.0.1:5432 (dropped by ``down``), or
  ``--database-url``; no RabbitMQ (events wait in the outbox, as without a broker);
- the GCS notices a dead node after about 6 s instead of 15 s (health checks every 2 s, 3 misses).

This module is the command line; the parts live beside it: ``lifecycle`` (up and down),
``database``, ``environment`` (each node's), ``nodes`` (ray start, the failure drill),
``serve_deploy``, ``smoke``, ``upgrade`` (the upgrade drill), ``placement`` (status and the
settle wait), ``state`` (what up recorded) and ``processes`` (ports, process trees, the log
line).

``upgrade`` deploys the running application again with changed replica bounds (in place), then
with a changed setting and a new release (a new code version: Serve replaces every replica),
and waits each time until Serve reports the new config RUNNING; run a load (``smoke``, or your
own) meanwhile: no request should fail. ``--changes bounds,setting,release`` picks the changes,
``--replicas N``, ``--setting MARKETPLACE_X=V`` and ``--release LABEL`` their values.
"""

from __future__ import annotations

import argparse
import json
import signal

from cluster.local.environment import driver_exports
from cluster.local.lifecycle import down, up
from cluster.local.nodes import kill_worker
from cluster.local.placement import placement
from cluster.local.smoke import smoke
from cluster.local.state import forget_pointer, load_pointer, record_pointer
from cluster.local.upgrade import CHANGES, DEFAULT_SETTING, parse_setting, upgrade


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit status (``smoke``'s and ``rehearse``'s: the load run's)."""
    parser = argparse.ArgumentParser(
        prog="python -m cluster.local.rehearsal",
        description="A head and worker Ray nodes on this machine, deployed like the cluster.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "rehearse"):
        sub = commands.add_parser(name)
        sub.add_argument("--overlay", default="dev", choices=("dev", "prod"))
        sub.add_argument("--workers", type=int, default=2)
        sub.add_argument("--worker-cpus", type=int, default=2)
        sub.add_argument("--database-url", help="default: a fresh database on 127.0.0.1:5432")
        if name == "rehearse":
            sub.add_argument("--duration", type=float, help="smoke duration override (s)")
    smoke_parser = commands.add_parser("smoke")
    smoke_parser.add_argument("--duration", type=float)
    commands.add_parser("status")
    commands.add_parser("env")
    kill = commands.add_parser("kill-worker")
    kill.add_argument("index", type=int)
    drill = commands.add_parser("upgrade")
    drill.add_argument("--changes", default=",".join(CHANGES), help="of: " + ",".join(CHANGES))
    drill.add_argument("--replicas", type=int, default=2, help="bounds: at least this many")
    drill.add_argument("--setting", type=parse_setting, default=DEFAULT_SETTING)
    drill.add_argument("--release", help="the release label (default: the time now)")
    drill.add_argument("--surge", type=int, help="max_surge_percent to set first (0-100)")
    drill.add_argument("--timeout", type=float, default=300, help="per step (s)")
    commands.add_parser("down")
    args = parser.parse_args(argv)

    if args.command in ("up", "rehearse"):
        cluster = up(args.overlay, args.workers, args.worker_cpus, args.database_url)
        if args.command == "rehearse":
            try:
                return smoke(cluster, args.duration)
            finally:
                down(cluster)
        record_pointer(cluster)
        print(
            f"marketplace: {cluster.url}\ndashboard:   {cluster.dashboard}\n"
            f"admin:       {cluster.admin_email} / {cluster.admin_password}\n"
            f"Ray address: {cluster.gcs_address}\n"
            'drive it:    eval "$(python -m cluster.local.rehearsal env)"; then marketplace '
            "simulate/load --faults PLAN (kill_node too)\n"
            "stop with:   python -m cluster.local.rehearsal down"
        )
        return 0
    cluster = load_pointer()
    if args.command == "smoke":
        return smoke(cluster, args.duration)
    if args.command == "status":
        print(json.dumps(placement(cluster), indent=2))
        return 0
    if args.command == "env":
        print(driver_exports(cluster))
        return 0
    if args.command == "upgrade":
        changes = tuple(c for c in args.changes.split(",") if c)
        unknown = set(changes) - set(CHANGES)
        if unknown or args.replicas < 1:
            parser.error(f"--changes takes {','.join(CHANGES)}; --replicas at least 1")
        results = upgrade(
            cluster,
            changes,
            replicas=args.replicas,
            setting=args.setting,
            release=args.release,
            surge=args.surge,
            timeout_s=args.timeout,
        )
        print(f"upgraded in {sum(r.seconds for r in results):.1f} s ({len(results)} deploys)")
        return 0
    if args.command == "kill-worker":
        kill_worker(cluster, args.index)
        return 0
    down(cluster)
    forget_pointer()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM unwinds like Ctrl-C
    raise SystemExit(main())
