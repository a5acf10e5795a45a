"""The Kubernetes manifests, offline: every layer renders with real kustomize, every object
validates strictly against its schema (Kubernetes', the vendored CRDs', prometheus-operator's),
``serveConfigV2`` validates with Ray's own schema and equals what the layer's settings produce,
and the production overlay has what production needs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cluster import render as render_module
from cluster.manifests import (
    BASE,
    CLUSTER_DIR,
    OVERLAYS,
    SECRET,
    Manifest,
    find,
    layer_dir,
    render,
    serve_config_v2,
    settings_env,
)
from cluster.observability import generate as observability
from cluster.validate import object_errors, pod_templates, validate
from serve_app.deploy_config import IMPORT_PATH, serve_config, settings_from_env, unknown_settings

pytestmark = pytest.mark.unit

LAYERS = (BASE, *OVERLAYS)
ROOT = CLUSTER_DIR.parent
# Secrets that operators (not these manifests) create.
OPERATOR_SECRETS = {"marketplace-rabbitmq-default-user"}  # the RabbitMQ Cluster Operator's
SECRET_EXAMPLE = "secret.example.yaml"  # the keys of marketplace-secrets; applied by no layer
NOT_SETTINGS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}  # Secret keys read by other containers


@pytest.fixture(scope="module", params=LAYERS)
def layer(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    return request.param, render(request.param)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: render(name) for name in LAYERS}


def kinds(objects: list[Manifest]) -> set[str]:
    return {str(obj["kind"]) for obj in objects}


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def pod_specs(objects: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    """(owner, pod spec) of every workload, the RayService's groups included."""
    specs = []
    for obj in objects:
        if obj["kind"] == "RayService":
            specs += [(f"RayService/{n}", t["spec"]) for n, t in pod_templates(obj)]
        elif obj["kind"] in ("StatefulSet", "Job", "Deployment"):
            specs.append(
                (f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"])
            )
    return specs


def env_value(container: dict[str, Any], name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


# -- rendering and schemas --------------------------------------------------------------------


def test_every_layer_renders_into_one_namespace(layer: tuple[str, list[Manifest]]) -> None:
    name, objects = layer
    assert {"Namespace", "ConfigMap", "RayService", "RabbitmqCluster", "StatefulSet", "Job"} <= (
        kinds(objects)
    ), name
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "marketplace", obj["metadata"]["name"]


def test_every_object_validates_strictly(layer: tuple[str, list[Manifest]]) -> None:
    name, objects = layer
    assert validate(objects) == {}, name


@pytest.mark.parametrize(
    ("kind", "path", "field"),
    [
        ("RayService", ["spec", "rayClusterConfig", "headGroupSpec"], "rayStartParam"),
        (
            "RayService",
            [
                "spec",
                "rayClusterConfig",
                "workerGroupSpecs",
                0,
                "template",
                "spec",
                "containers",
                0,
            ],
            "imagePullPolicyy",
        ),
        ("RayService", ["metadata"], "label"),
        ("RabbitmqCluster", ["spec"], "replica"),
        ("PodMonitor", ["spec"], "podMetricEndpoints"),
        ("PodMonitor", ["spec", "podMetricsEndpoints", 0], "portt"),
        ("PrometheusRule", ["spec"], "group"),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0], "alertt"),
        ("PodDisruptionBudget", ["spec"], "maxUnavailabe"),
        ("Job", ["spec", "template", "spec", "containers", 0], "args_"),
        ("Service", ["spec", "ports", 0], "targetport"),
    ],
)
def test_an_unknown_field_is_an_error(
    rendered: dict[str, list[Manifest]], kind: str, path: list[Any], field: str
) -> None:
    obj = copy.deepcopy(next(o for o in rendered["prod"] if o["kind"] == kind))
    target: Any = obj
    for part in path:
        target = target[part]
    target[field] = "x"
    errors = object_errors(obj)
    assert errors and any(field in error for error in errors), errors


def test_a_wrong_type_and_a_bad_serve_config_are_errors(
    rendered: dict[str, list[Manifest]],
) -> None:
    service = copy.deepcopy(find(rendered["prod"], "RayService"))
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "ten"
    assert any("maxReplicas" in e for e in object_errors(service))
    service = copy.deepcopy(find(rendered["prod"], "RayService"))
    service["spec"]["serveConfigV2"] = "applications: [{name: m, import_path: 5}]"
    assert any("serveConfigV2" in e for e in object_errors(service))
    service = copy.deepcopy(find(rendered["prod"], "RayService"))
    service["spec"]["upgradeStrategy"]["type"] = "BlueGreen"
    assert any("upgradeStrategy" in e for e in object_errors(service))


# -- serveConfigV2 and the settings -----------------------------------------------------------


def test_serve_config_is_what_the_settings_produce(layer: tuple[str, list[Manifest]]) -> None:
    """The manifest's serveConfigV2 equals the config the rendered ConfigMap's settings produce
    through the application's own builder: the two cannot drift."""
    from ray.serve.schema import ServeDeploySchema

    name, objects = layer
    env = settings_env(objects)
    assert unknown_settings(env) == [], f"{name}: settings Settings does not know"
    env.setdefault("MARKETPLACE_JWT_SECRET", render_module.RENDER_ONLY_JWT_SECRET)
    config = serve_config_v2(objects)
    ServeDeploySchema.model_validate(config)
    assert config == serve_config(settings_from_env(env)), (
        f"{name}: serve-config.yaml is stale; run `python -m cluster.render`"
    )
    app = config["applications"][0]
    assert app["import_path"] == IMPORT_PATH == "serve_app.app:app"
    assert app["route_prefix"] == "/"
    settings = settings_from_env(env)
    deployments = {d["name"]: d for d in app["deployments"]}
    assert deployments["Gateway"]["autoscaling_config"]["max_replicas"] == (
        settings.gateway_max_replicas
    )
    assert deployments["Auth"]["ray_actor_options"]["num_cpus"] == settings.auth_num_cpus
    assert config["http_options"] == {"host": "0.0.0.0", "port": settings.http_port}


def test_generated_files_are_up_to_date() -> None:
    for name in LAYERS:
        path = layer_dir(name) / "serve-config.yaml"
        assert path.read_text(encoding="utf-8") == render_module.patch_text(name), (
            f"{path} is stale; run `python -m cluster.render`"
        )


def test_a_changed_setting_changes_the_serve_config() -> None:
    stand_in = render_module.RENDER_ONLY_JWT_SECRET
    env = settings_env(render("prod")) | {"MARKETPLACE_JWT_SECRET": stand_in}
    before = serve_config(settings_from_env(env))
    after = serve_config(settings_from_env(env | {"MARKETPLACE_GATEWAY_MAX_REPLICAS": "3"}))
    assert before != after
    gateway = next(d for d in after["applications"][0]["deployments"] if d["name"] == "Gateway")
    assert gateway["autoscaling_config"]["max_replicas"] == 3


# -- references -------------------------------------------------------------------------------


def _references(objects: list[Manifest]) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """ConfigMap names, (Secret name, key) pairs and whole Secrets the workloads refer to."""
    configmaps, secret_keys, secrets = set(), set(), set()
    for _, spec in pod_specs(objects):
        for container in containers(spec):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    configmaps.add(source["configMapRef"]["name"])
                if "secretRef" in source:
                    secrets.add(source["secretRef"]["name"])
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    configmaps.add(ref["configMapKeyRef"]["name"])
                if "secretKeyRef" in ref:
                    secret_keys.add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
    for obj in objects:
        password = (
            obj.get("spec", {})
            .get("rayClusterConfig", {})
            .get("gcsFaultToleranceOptions", {})
            .get("redisPassword", {})
            .get("valueFrom", {})
            .get("secretKeyRef")
        )
        if password:
            secret_keys.add((password["name"], password["key"]))
    return configmaps, secret_keys, secrets


def test_every_reference_resolves(layer: tuple[str, list[Manifest]]) -> None:
    name, objects = layer
    configmaps, secret_keys, secrets = _references(objects)
    rendered_configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    assert configmaps <= rendered_configmaps, name  # hashed names were followed
    rendered_secrets = {
        o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
        for o in objects
        if o["kind"] == "Secret"
    }
    provided_by_operator = OPERATOR_SECRETS | {SECRET}
    for secret in secrets | {s for s, _ in secret_keys}:
        assert secret in rendered_secrets or secret in provided_by_operator, (name, secret)
    for secret, key in secret_keys:
        if secret in rendered_secrets:
            assert key in rendered_secrets[secret], (name, secret, key)


def test_secret_keys_are_settings_and_placeholders_the_settings_refuse() -> None:
    secret = yaml.safe_load((layer_dir(BASE) / SECRET_EXAMPLE).read_text(encoding="utf-8"))
    keys = set(secret["stringData"])
    assert unknown_settings({k: "" for k in keys - NOT_SETTINGS}) == []
    assert {
        "MARKETPLACE_JWT_SECRET",
        "MARKETPLACE_ADMIN_PASSWORD",
        "MARKETPLACE_DATABASE_URL",
    } <= keys
    for key, value in secret["stringData"].items():
        assert "change-me" in value, f"{key} must stay a placeholder"
    settings_keys = set(settings_env(render(BASE)))
    assert not keys & settings_keys, "a secret in the ConfigMap"
    # Even the dev overlay's pods (development, but bound to 0.0.0.0) refuse the placeholders.
    for layer in LAYERS:
        env = settings_env(render(layer))
        for key in ("MARKETPLACE_JWT_SECRET", "MARKETPLACE_ADMIN_PASSWORD"):
            stand_ins = {"MARKETPLACE_JWT_SECRET": render_module.RENDER_ONLY_JWT_SECRET}
            with pytest.raises(ValidationError, match=key):
                settings_from_env(env | stand_ins | {key: secret["stringData"][key]})


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_ships_a_secret_and_the_guide_creates_every_key(layer: str) -> None:
    """No layer renders a Secret of ours: the guide's `kubectl create secret` must give every
    key a layer reads."""
    objects = render(layer)
    assert not [o for o in objects if o["kind"] == "Secret"]
    _, secret_keys, _ = _references(objects)
    secret = yaml.safe_load((layer_dir(BASE) / SECRET_EXAMPLE).read_text(encoding="utf-8"))
    needed = {key for name, key in secret_keys if name == SECRET} | set(secret["stringData"])
    guide = (CLUSTER_DIR / "README.md").read_text(encoding="utf-8")
    given = set(re.findall(r"--from-literal=([A-Z_]+)=", guide))
    assert needed <= given, sorted(needed - given)


# -- what each overlay promises ---------------------------------------------------------------


def test_dev_is_small_with_one_worker(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["dev"]
    cluster = find(objects, "RayService")["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is False
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 1
    assert settings_env(objects)["MARKETPLACE_ENVIRONMENT"] == "development"
    assert find(objects, "RabbitmqCluster")["spec"]["replicas"] == 1


def test_prod_has_what_production_needs(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["prod"]
    service = find(objects, "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    assert service["spec"]["upgradeStrategy"]["type"] == "NewCluster"
    assert settings_env(objects)["MARKETPLACE_ENVIRONMENT"] == "production"
    # Ray autoscaling, within bounds, with a sized autoscaler.
    assert cluster["enableInTreeAutoscaling"] is True
    assert {"requests", "limits"} <= set(cluster["autoscalerOptions"]["resources"])
    for group in cluster["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["minReplicas"] < group["maxReplicas"]
    # Requests and limits on every container of every workload.
    for owner, spec in pod_specs(objects):
        for container in containers(spec):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (owner, container["name"])
    # A memory-backed /dev/shm and the HAProxy ingress on every Ray pod.
    for name, template in pod_templates(service):
        spec = template["spec"]
        shm = [
            v for v in spec.get("volumes", []) if v.get("emptyDir", {}).get("medium") == "Memory"
        ]
        assert shm, name
        ray = spec["containers"][0]
        assert {"name": shm[0]["name"], "mountPath": "/dev/shm"} in ray["volumeMounts"], name
        assert env_value(ray, "RAY_SERVE_ENABLE_HA_PROXY") == "1", name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
    # GCS fault tolerance on the Redis this overlay runs, with its password from the Secret.
    ft = cluster["gcsFaultToleranceOptions"]
    host, _, port = ft["redisAddress"].partition(":")
    redis = find(objects, "Service", host)
    assert int(port) in [p["port"] for p in redis["spec"]["ports"]]
    assert ft["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    # PodDisruptionBudgets that select pods the overlay makes.
    labels = [t["metadata"]["labels"] for _, t in pod_templates(service)]
    labels.append({"app.kubernetes.io/name": "marketplace-rabbitmq"})  # the operator's label
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert len(budgets) >= 2
    for budget in budgets:
        wanted = budget["spec"]["selector"]["matchLabels"].items()
        assert any(wanted <= pod.items() for pod in labels), budget["metadata"]["name"]
    # The PodMonitor scrapes named ports the Ray containers have.
    monitor = find(objects, "PodMonitor")
    ports = {
        p["name"] for _, t in pod_templates(service) for p in t["spec"]["containers"][0]["ports"]
    }
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    # Only the node exports: the gateway's /metrics sums the same series (counted twice if both).
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels[1].items()


def test_overlays_ship_the_dashboard_and_prod_the_alert_rules(
    rendered: dict[str, list[Manifest]],
) -> None:
    dashboard = observability.DASHBOARD
    for name in OVERLAYS:
        config = find(rendered[name], "ConfigMap", "marketplace-dashboard")
        # The sidecar's label, and the name fixed (no hash) so an apply replaces it in place.
        assert config["metadata"]["labels"]["grafana_dashboard"] == "1", name
        assert config["metadata"]["name"] == "marketplace-dashboard", name
        assert config["data"] == {dashboard.name: dashboard.read_text(encoding="utf-8")}, name
    rule = find(rendered["prod"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(observability.RULES.read_text(encoding="utf-8"))
    assert "PrometheusRule" not in kinds(rendered["dev"])
    assert "ConfigMap" not in {o["kind"] for o in rendered[BASE] if "dashboard" in str(o)}


def test_every_overlay_runs_one_image_at_the_pinned_ray(
    rendered: dict[str, list[Manifest]],
) -> None:
    pin = re.search(r'"ray\[serve\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)  # type: ignore[union-attr]
    for name, objects in rendered.items():
        service = find(objects, "RayService")
        assert service["spec"]["rayClusterConfig"]["rayVersion"] == pin, name
        images = {
            c["image"]
            for owner, spec in pod_specs(objects)
            if not owner.startswith("StatefulSet")
            for c in containers(spec)
        }
        assert len(images) == 1, (name, images)


def test_the_load_job_waits_to_be_started(rendered: dict[str, list[Manifest]]) -> None:
    for objects in rendered.values():
        job = find(objects, "Job", "marketplace-load")
        assert job["spec"]["suspend"] is True
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--host=http://marketplace-serve-svc:8000" in args


def test_crds_are_the_vendored_releases() -> None:
    names = {
        "ray.io_rayservices.yaml": ("rayservices.ray.io", "v1"),
        "rabbitmq.com_rabbitmqclusters.yaml": ("rabbitmqclusters.rabbitmq.com", "v1beta1"),
    }
    shared = ROOT.parent / "shared" / "kuberay-crds"  # beside a development checkout only
    for file, (name, version) in names.items():
        path = CLUSTER_DIR / "crds" / file
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert crd["metadata"]["name"] == name
        assert any(v["name"] == version and v["served"] for v in crd["spec"]["versions"])
        if shared.is_dir():
            assert path.read_bytes() == (shared / file).read_bytes(), file


def test_manifests_have_no_tabs_or_trailing_spaces() -> None:
    for path in Path(CLUSTER_DIR / "k8s").rglob("*.yaml"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert "\t" not in line and line == line.rstrip(), f"{path}:{number}"


def _pod_labels_and_ports(objects: list[Manifest]) -> list[tuple[dict[str, str], set[str]]]:
    """(labels, named container ports) of every pod a layer makes."""
    pods = []
    for obj in objects:
        if obj["kind"] == "RayService":
            templates = [t for _, t in pod_templates(obj)]
        elif obj["kind"] in ("StatefulSet", "Job", "Deployment"):
            templates = [obj["spec"]["template"]]
        else:
            continue
        for template in templates:
            ports = {p["name"] for c in containers(template["spec"]) for p in c.get("ports", [])}
            pods.append((template["metadata"].get("labels", {}), ports))
    return pods


def test_ray_answers_only_its_own_pods_but_the_gateway_answers_everyone(
    layer: tuple[str, list[Manifest]],
) -> None:
    name, objects = layer
    service = find(objects, "RayService")
    # The GCS, dashboard and job submission want Ray's token (KubeRay generates it).
    assert service["spec"]["rayClusterConfig"]["authOptions"] == {"mode": "token"}
    pods = _pod_labels_and_ports(objects)
    ray_labels = [t["metadata"]["labels"] for _, t in pod_templates(service)]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for policy in policies:
        spec = policy["spec"]
        selected = [
            ports
            for labels, ports in pods
            if spec["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert selected, f"{policy['metadata']['name']} selects no pod"
        for rule in spec["ingress"]:
            for port in rule.get("ports", []):  # named ports the selected pods have
                assert all(port["port"] in ports for ports in selected), (policy, port)
    ray_rules = [
        rule
        for p in policies
        if all(p["spec"]["podSelector"]["matchLabels"].items() <= pod.items() for pod in ray_labels)
        for rule in p["spec"]["ingress"]
    ]
    # From anywhere (no `from`): only the gateway's port, in every layer.
    assert [r["ports"] for r in ray_rules if "from" not in r] == [
        [{"port": "serve", "protocol": "TCP"}]
    ]
    # Every other rule names its sources: Ray's own pods, or (prod) Prometheus for the metrics port.
    for rule in ray_rules:
        if "from" in rule and "ports" in rule:
            assert [p["port"] for p in rule["ports"]] == ["metrics"], name
    database = next(p for p in policies if p["metadata"]["name"] == "marketplace-postgres")
    (only,) = database["spec"]["ingress"]
    assert only["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "marketplace"}}}
    ]
    if name == "prod":
        assert any("namespaceSelector" in s for r in ray_rules for s in r.get("from", []))
