"""Validate the rendered manifests offline, the way a strict API server would.

- Kubernetes objects (ConfigMap, Secret, Service, StatefulSet, Job, PodDisruptionBudget, ...)
  against the Kubernetes OpenAPI schemas that ``kubernetes-validate`` bundles, in strict mode
  (unknown fields are errors), for the oldest and the newest Kubernetes version checked;
- custom resources against the CRDs vendored in ``cluster/crds`` (the served version's
  ``openAPIV3Schema``), with ``additionalProperties: false`` wherever a schema lists properties
  and does not preserve unknown fields; their ``metadata`` as Kubernetes ObjectMeta;
- the PodMonitor and the PrometheusRule against the prometheus-operator schemas of
  ``cloudcoil-models-prometheus-operator`` (pydantic models generated from its CRDs; no package
  ships the CRD files), same rule;
- the pod templates inside the RayService once more as Kubernetes ``PodTemplate`` objects;
- ``serveConfigV2`` with Ray's own ``ray.serve.schema.ServeDeploySchema``.

    python -m cluster.validate          # every layer; exit 1 and the errors if any
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from jsonschema.exceptions import best_match

from cluster.manifests import BASE, CLUSTER_DIR, OVERLAYS, Manifest, render

CRD_DIR = CLUSTER_DIR / "crds"
CRD_FILES = {
    ("ray.io", "RayService"): "ray.io_rayservices.yaml",
    ("rabbitmq.com", "RabbitmqCluster"): "rabbitmq.com_rabbitmqclusters.yaml",
}
# prometheus-operator kinds, checked against cloudcoil's models of its CRDs.
PROMETHEUS_OPERATOR = {
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
}
# The oldest Kubernetes the manifests are checked against, and the newest the package knows.
OLDEST_KUBERNETES = "1.30.0"
# KubeRay's RayService upgrade strategies (its CRD types the field as a plain string).
UPGRADE_STRATEGIES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")


def kubernetes_versions() -> tuple[str, ...]:
    return (OLDEST_KUBERNETES, str(kubernetes_validate.latest_version()))


def group_of(obj: Manifest) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def strict(schema: Any) -> Any:
    """An OpenAPI v3 schema (from a CRD) as a JSON schema that refuses unknown fields.

    ``additionalProperties: false`` goes where properties are listed, no other rule for extra
    keys is given and unknown fields are not preserved; ``nullable`` becomes a ``null`` type.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The strict schema of a vendored CRD's served ``version``."""
    crd = yaml.safe_load((CRD_DIR / CRD_FILES[(group, kind)]).read_text(encoding="utf-8"))
    for served in crd["spec"]["versions"]:
        if served["name"] == version and served.get("served"):
            return dict(strict(served["schema"]["openAPIV3Schema"]))
    raise LookupError(f"{kind}.{group} has no served version {version}")


@functools.cache
def prometheus_operator_schema(kind: str) -> dict[str, Any]:
    """The strict schema of a ``monitoring.coreos.com/v1`` PodMonitor or PrometheusRule."""
    from cloudcoil.models.prometheus_operator import v1

    model = {"PodMonitor": v1.PodMonitor, "PrometheusRule": v1.PrometheusRule}[kind]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    # ObjectMeta is checked by Kubernetes' own schema; the rest must hold every field.
    schema["properties"]["metadata"] = {"type": "object"}
    return dict(strict(schema))


def _schema_errors(schema: dict[str, Any], obj: Manifest) -> Iterator[str]:
    # OpenAPI 3.0 schema objects follow JSON Schema draft 4/5 (boolean exclusive bounds).
    validator = jsonschema.Draft4Validator(schema)
    # An anyOf (pydantic's optional fields) fails as a whole at its top; best_match names the
    # deepest cause instead (the unknown field, not the whole list that holds it).
    found = (best_match([error]) for error in validator.iter_errors(obj))
    for error in sorted(found, key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        yield f"{where}: {error.message[:300]}"


def _kubernetes_errors(obj: Manifest, version: str) -> Iterator[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(part) for part in exc.path) or "(root)"
        yield f"{where}: {exc.message[:300]} (Kubernetes {version})"
    except kubernetes_validate.SchemaNotFoundError:
        yield f"no Kubernetes {version} schema for {obj.get('apiVersion')} {obj.get('kind')}"


def _metadata_errors(obj: Manifest, version: str) -> Iterator[str]:
    shell = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    yield from _kubernetes_errors(shell, version)


def pod_templates(rayservice: Manifest) -> Iterator[tuple[str, dict[str, Any]]]:
    """(group name, pod template) of the head and every worker group."""
    config = rayservice["spec"]["rayClusterConfig"]
    yield "head", config["headGroupSpec"]["template"]
    for group in config.get("workerGroupSpecs", []):
        yield str(group["groupName"]), group["template"]


def serve_config_errors(rayservice: Manifest) -> Iterator[str]:
    from ray.serve.schema import ServeDeploySchema

    text = rayservice["spec"].get("serveConfigV2")
    if not text:
        yield "spec.serveConfigV2 is empty"
        return
    try:
        ServeDeploySchema.model_validate(yaml.safe_load(text))
    except Exception as exc:
        yield f"spec.serveConfigV2: {exc}"


def object_errors(obj: Manifest) -> list[str]:
    """Every problem with one rendered object (empty: valid)."""
    group, kind = group_of(obj), str(obj.get("kind"))
    version = str(obj.get("apiVersion", "")).split("/")[-1]
    errors: list[str] = []
    if (group, kind) in CRD_FILES or (group, kind) in PROMETHEUS_OPERATOR:
        if (group, kind) in PROMETHEUS_OPERATOR:
            schema = prometheus_operator_schema(kind)
        else:
            schema = crd_schema(group, kind, version)
        errors += _schema_errors(schema, obj)
        for k8s in kubernetes_versions():
            errors += _metadata_errors(obj, k8s)
        if kind == "RayService":
            errors += serve_config_errors(obj)
            strategy = obj["spec"].get("upgradeStrategy", {}).get("type")
            if strategy is not None and strategy not in UPGRADE_STRATEGIES:
                errors.append(f"spec.upgradeStrategy.type {strategy!r} not in {UPGRADE_STRATEGIES}")
            for name, template in pod_templates(obj):
                shell = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}}
                shell["template"] = copy.deepcopy(template)
                for k8s in kubernetes_versions():
                    errors += [f"{name} pod: {e}" for e in _kubernetes_errors(shell, k8s)]
    elif "." in group and not group.endswith(".k8s.io"):
        errors.append(f"no schema for the custom resource {obj.get('apiVersion')} {kind}")
    else:
        for k8s in kubernetes_versions():
            errors += _kubernetes_errors(obj, k8s)
    return errors


def validate(objects: Iterable[Manifest]) -> dict[str, list[str]]:
    """``kind/name`` -> errors, for every object with any."""
    problems = {}
    for obj in objects:
        errors = object_errors(obj)
        if errors:
            problems[f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"] = errors
    return problems


def main(argv: list[str] | None = None) -> int:
    layers = argv if argv else [BASE, *OVERLAYS]
    failed = False
    for layer in layers:
        objects = render(layer)
        problems = validate(objects)
        print(f"{layer}: {len(objects)} objects, {'OK' if not problems else 'INVALID'}")
        for name, errors in problems.items():
            failed = True
            for error in errors:
                print(f"  {name}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
