"""The Serve deploy config that a set of settings produces: a RayService's ``serveConfigV2``.

``serve_app.app:app`` builds its deployments from the ``MARKETPLACE_*`` environment, so on a
cluster the options of each deployment (autoscaling bounds, CPUs, queue length) follow the
settings in the pods' environment. A deploy config states the same options once more, where
operators read them and where KubeRay applies changes in place. ``serve_config`` derives them
from the application itself the way ``serve build`` does (Ray builds the application and
describes each deployment with its own schema), so the manifest and the code cannot disagree
when the manifest is generated from the same settings (``python -m cluster.render``).

``python -m serve_app.deploy_config`` prints the config for the settings in the environment.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import yaml

from marketplace.config import Settings
from serve_app.serving import APP_NAME

IMPORT_PATH = "serve_app.app:app"
ENV_PREFIX = "MARKETPLACE_"
# Proxies on every node: KubeRay's serve Service then spreads traffic over every pod whose
# proxy is healthy, and the gateway keeps answering when one node goes.
PROXY_LOCATION = "EveryNode"


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Settings from ``MARKETPLACE_*`` variables in ``env`` alone (not this process's
    environment), as a pod with that ConfigMap and Secret would read them."""
    values = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.upper().startswith(ENV_PREFIX)
    }
    return Settings.model_validate(values)


def unknown_settings(env: Mapping[str, str]) -> list[str]:
    """The ``MARKETPLACE_*`` names in ``env`` that no setting has (Settings ignores them)."""
    fields = set(Settings.model_fields)
    return sorted(
        key
        for key in env
        if key.upper().startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() not in fields
    )


def deployment_configs(settings: Settings) -> list[dict[str, Any]]:
    """Each deployment's options, as ``serve build`` writes them (only those the app sets)."""
    from ray.serve._private.build_app import build_app as build_serve_app
    from ray.serve.deployment import deployment_to_schema

    from serve_app.app import build_app

    # The database URL is a bound argument of the gateway, not a deployment option; a URL
    # that needs no file keeps the default (a SQLite file under .marketplace/) from being made.
    settings = settings.model_copy(update={"database_url": settings.database_url or "sqlite://"})
    built = build_serve_app(build_app(settings), name=APP_NAME)
    schemas = [
        deployment_to_schema(deployment).model_dump(mode="json", exclude_unset=True)
        for deployment in built.deployments
    ]
    return sorted(schemas, key=lambda schema: str(schema["name"]))


def serve_config(settings: Settings) -> dict[str, Any]:
    """The whole deploy config (``serve deploy`` file, RayService ``serveConfigV2``)."""
    from ray.serve.schema import ServeDeploySchema

    logging_config = {"enable_access_log": settings.access_log}
    config: dict[str, Any] = {
        "proxy_location": PROXY_LOCATION,
        "http_options": {"host": settings.http_host, "port": settings.http_port},
        "logging_config": logging_config,
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "logging_config": dict(logging_config),
                "deployments": deployment_configs(settings),
            }
        ],
    }
    ServeDeploySchema.model_validate(config)  # Ray's own check of what it will be given
    return config


def to_yaml(config: Mapping[str, Any]) -> str:
    """Block-style YAML in the config's own key order."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False, width=100)


def main() -> None:
    """Print the deploy config for the settings in this process's environment."""
    import os

    sys.stdout.write(to_yaml(serve_config(settings_from_env(os.environ))))


if __name__ == "__main__":
    main()
