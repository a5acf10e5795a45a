"""The upgrade drill: the running Serve application deployed again with a changed config while
it serves, as KubeRay applies a RayService whose ``serveConfigV2`` alone changed (in place, on
the running Ray cluster, through the same dashboard REST API).

Serve 2.60 sorts a redeploy by the application's code version, a hash of its ``import_path``,
``runtime_env`` and ``args`` (``ray.serve._private.deploy_utils.get_app_code_version``):

- replica bounds (a deployment's ``autoscaling_config``) keep the code version: Serve applies
  them to the running deployments, starting or stopping replicas, without restarting the others;
- a setting (a ``MARKETPLACE_*`` variable in the application's ``runtime_env.env_vars``) or a
  new release (a marker variable here; on a cluster also a new ``working_dir`` or image) changes
  it: Serve builds the application again and replaces every replica of every deployment, a
  rolling update of ``rolling_update_percentage`` (20 %, at least one replica) at a time.

With its default ``max_surge_percent: 0`` Serve stops an old replica *before* it starts its
replacement, so a deployment of one replica has none while the new one starts: HAProxy holds
the requests with nowhere to send them (measured on 2 cores: 4 of 365 timed out after 15 s). A
stopped ingress replica keeps answering what HAProxy still sends it for
``RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S`` (30 s), which also makes a roll of the gateway
last at least that long. So the drill does what an operator does: raise the bounds to two
replicas first (in place), then roll the new code and setting one replica at a time while the
other serves (measured: no failed request). ``--surge 100`` (``max_surge_percent``, set in place
first) is the other way: Serve starts each replacement before it stops the old replica (also
no failed request, with one replica each).

    python -m cluster.local.rehearsal upgrade                       # bounds, then setting+release
    python -m cluster.local.rehearsal upgrade --changes release     # one change alone
    python -m cluster.local.rehearsal upgrade --replicas 3 --setting MARKETPLACE_JWT_TTL_S=600
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from cluster.local.processes import log
from cluster.local.serve_deploy import submit
from cluster.local.state import LocalCluster
from cluster.manifests import render, serve_config_v2

# The deployments whose bounds the drill raises: all of the application's.
SCALED = ("Gateway", "Auth")
# Harmless to change under load: the gateway accepts bodies up to twice the default size.
DEFAULT_SETTING = ("MARKETPLACE_MAX_BODY_BYTES", "131072")
# Not a setting (Settings ignores it): a label whose only effect is a new code version, as a new
# release of the code would have.
RELEASE_VAR = "APP_RELEASE"
CHANGES = ("bounds", "setting", "release")


@dataclass(frozen=True)
class Step:
    """One redeploy: the whole deploy config, what it changes, and whether it rolls."""

    name: str
    changes: list[str]
    config: dict[str, Any]
    # A new code version: Serve replaces every replica (else it reconfigures them in place).
    rolls: bool

    @property
    def app(self) -> dict[str, Any]:
        """The application's part of the config (what ``deployed_app_config`` reports)."""
        app: dict[str, Any] = self.config["applications"][0]
        return app


@dataclass
class StepResult:
    """How a step went: seconds from the deploy request until the application ran its config, and
    the replicas of each deployment before and after."""

    step: Step
    seconds: float
    before: dict[str, set[str]] = field(default_factory=dict)
    after: dict[str, set[str]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the step, the time it took and what became of the replicas."""
        kind = "new code version, rolling update" if self.step.rolls else "in place"
        replicas = ", ".join(
            f"{name} {len(self.before.get(name, set()))}->{len(ids)} replicas"
            f" ({len(ids - self.before.get(name, set()))} new)"
            for name, ids in sorted(self.after.items())
        )
        return (
            f"{self.step.name} ({kind}): {'; '.join(self.step.changes)} -- RUNNING after "
            f"{self.seconds:.1f} s; {replicas}"
        )


def _deployment(app: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in app["deployments"] if d["name"] == name)
    return found


def with_bounds(config: dict[str, Any], replicas: int) -> tuple[dict[str, Any], list[str]]:
    """``config`` with at least ``replicas`` replicas of each deployment (min and initial; max
    raised to it where lower), and what changed."""
    new = copy.deepcopy(config)
    changes = []
    for name in SCALED:
        scaling = _deployment(new["applications"][0], name)["autoscaling_config"]
        old = (scaling["min_replicas"], scaling["max_replicas"])
        scaling["min_replicas"] = scaling["initial_replicas"] = replicas
        scaling["max_replicas"] = max(scaling["max_replicas"], replicas)
        if (scaling["min_replicas"], scaling["max_replicas"]) != old:
            changes.append(
                f"{name} replicas {old[0]}..{old[1]} -> "
                f"{scaling['min_replicas']}..{scaling['max_replicas']}"
            )
    return new, changes


def with_surge(config: dict[str, Any], percent: int) -> tuple[dict[str, Any], list[str]]:
    """``config`` with ``max_surge_percent`` set on each deployment, and what changed."""
    new = copy.deepcopy(config)
    changes = []
    for name in SCALED:
        deployment = _deployment(new["applications"][0], name)
        old = deployment.get("max_surge_percent", 0)
        deployment["max_surge_percent"] = percent
        if percent != old:
            changes.append(f"{name} max_surge_percent {old} -> {percent}")
    return new, changes


def with_env(config: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """``config`` with ``env`` in the application's ``runtime_env.env_vars``, and what changed."""
    new = copy.deepcopy(config)
    app = new["applications"][0]
    runtime_env = dict(app.get("runtime_env") or {})
    env_vars = dict(runtime_env.get("env_vars") or {})
    changes = [f"{key}={value}" for key, value in env.items() if env_vars.get(key) != value]
    runtime_env["env_vars"] = env_vars | env
    app["runtime_env"] = runtime_env
    return new, changes


def plan(
    config: dict[str, Any],
    changes: tuple[str, ...] = CHANGES,
    *,
    replicas: int = 2,
    setting: tuple[str, str] = DEFAULT_SETTING,
    release: str | None = None,
    surge: int | None = None,
) -> list[Step]:
    """The redeploys that take ``config`` to the wanted one: the bounds (and ``surge``, Serve's
    ``max_surge_percent``) first, in place, then the setting and the release together (one
    roll). A step that changes nothing is left out."""
    steps = []
    current = config
    said: list[str] = []
    if "bounds" in changes:
        current, more = with_bounds(current, replicas)
        said += more
    if surge is not None:
        current, more = with_surge(current, surge)
        said += more
    if said:
        steps.append(Step("in place", said, current, rolls=False))
    env = {}
    if "setting" in changes:
        env[setting[0]] = setting[1]
    if "release" in changes:
        env[RELEASE_VAR] = release or time.strftime("%Y%m%d-%H%M%S")
    if env:
        rolled, said = with_env(current, env)
        if said:
            # Anything in the runtime_env is part of the code version: always a roll.
            steps.append(Step("roll", said, rolled, rolls=True))
    return steps


def serve_status(cluster: LocalCluster) -> dict[str, Any]:
    """The dashboard's ``GET /api/serve/applications/``: proxies, applications, replicas."""
    reply = httpx.get(f"{cluster.dashboard}/api/serve/applications/", timeout=30)
    reply.raise_for_status()
    status: dict[str, Any] = reply.json()
    return status


def deployed_config(cluster: LocalCluster) -> dict[str, Any]:
    """The overlay's serveConfigV2 with the application as it is deployed now (the config an
    upgrade starts from; its ``http_options`` are set per machine when it is deployed)."""
    config = serve_config_v2(render(cluster.overlay))
    name = config["applications"][0]["name"]
    app = serve_status(cluster)["applications"][name]["deployed_app_config"]
    config["applications"] = [app]
    return config


def replica_ids(app_status: dict[str, Any]) -> dict[str, set[str]]:
    """Each deployment's replicas, by id."""
    return {
        name: {r["replica_id"] for r in deployment["replicas"]}
        for name, deployment in app_status["deployments"].items()
    }


def pending(app_status: dict[str, Any], step: Step, since: float) -> str | None:
    """What still keeps ``step`` from having been applied, or None once it has: its config is
    the deployed one, the application RUNNING, every deployment HEALTHY with only RUNNING
    replicas within the new bounds, and after a roll every one of them started since ``since``
    (a Unix time)."""
    if app_status.get("deployed_app_config") != step.app:
        return "the new config is not the deployed one yet"
    if app_status["last_deployed_time_s"] < since:
        return "not deployed since the change"
    if app_status["status"] != "RUNNING":
        return f"application {app_status['status']}"
    for name, deployment in app_status["deployments"].items():
        replicas = deployment["replicas"]
        states = sorted(r["state"] for r in replicas)
        if deployment["status"] != "HEALTHY" or set(states) != {"RUNNING"}:
            return f"{name} {deployment['status']}, replicas {states}"
        scaling = _deployment(step.app, name).get("autoscaling_config") or {}
        if not scaling.get("min_replicas", 1) <= len(replicas) <= scaling.get("max_replicas", 1):
            return f"{name} has {len(replicas)} replicas"
        if step.rolls and any(r["start_time_s"] < since for r in replicas):
            return f"{name} still runs replicas of the old version"
    return None


def apply(cluster: LocalCluster, step: Step, timeout_s: float = 300) -> StepResult:
    """Deploy ``step``'s config and wait until the application runs it (TimeoutError after
    ``timeout_s``)."""
    name = step.app["name"]
    before = replica_ids(serve_status(cluster)["applications"][name])
    log(f"upgrade, {step.name}: {'; '.join(step.changes)}")
    since = time.time()
    began = time.monotonic()
    submit(cluster, step.config)
    log(f"  +{time.monotonic() - began:.1f} s: Serve took the config")
    last = "no status yet"
    while time.monotonic() - began < timeout_s:
        try:
            app_status = serve_status(cluster)["applications"][name]
        except (httpx.HTTPError, KeyError) as exc:
            last = repr(exc)
        else:
            waiting = pending(app_status, step, since)
            if waiting is not None and waiting != last:
                # The progress of the rollout, as Serve reports it (what the guide describes).
                log(f"  +{time.monotonic() - began:.1f} s: {waiting}")
            if waiting is None:
                result = StepResult(step, time.monotonic() - began, before, replica_ids(app_status))
                log(result.summary())
                return result
            last = waiting
        time.sleep(0.5)
    raise TimeoutError(f"{step.name} not applied after {timeout_s:.0f} s: {last}")


def upgrade(
    cluster: LocalCluster,
    changes: tuple[str, ...] = CHANGES,
    *,
    replicas: int = 2,
    setting: tuple[str, str] = DEFAULT_SETTING,
    release: str | None = None,
    surge: int | None = None,
    timeout_s: float = 300,
) -> list[StepResult]:
    """The drill: from the deployed config, each step of ``plan`` applied and waited for."""
    steps = plan(
        deployed_config(cluster),
        changes,
        replicas=replicas,
        setting=setting,
        release=release,
        surge=surge,
    )
    if not steps:
        log("upgrade: nothing to change")
    return [apply(cluster, step, timeout_s) for step in steps]


def parse_setting(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (for ``--setting``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("MARKETPLACE_"):
        raise ValueError(f"expected MARKETPLACE_NAME=VALUE, got {text!r}")
    return key, value
