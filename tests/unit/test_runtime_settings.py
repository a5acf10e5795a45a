"""Settings that reach Ray and Serve: the gateway's autoscaling window in the deployment config
that Serve is given, and whether a local Ray starts its dashboard. No Ray: the deployment config
is built the way ``serve build`` does, and ``ray.init`` is replaced by a recorder."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from actors import runtime
from marketplace.config import Settings
from serve_app.deploy_config import deployment_configs, settings_from_env

pytestmark = pytest.mark.unit


def gateway_autoscaling(settings: Settings) -> dict[str, Any]:
    (gateway,) = [d for d in deployment_configs(settings) if d["name"] == "Gateway"]
    config: dict[str, Any] = gateway["autoscaling_config"]
    return config


def test_the_gateway_look_back_period_defaults_to_serves_and_follows_the_setting() -> None:
    assert gateway_autoscaling(settings_from_env({}))["look_back_period_s"] == 30.0
    settings = settings_from_env({"MARKETPLACE_GATEWAY_LOOK_BACK_PERIOD_S": "12.5"})
    assert gateway_autoscaling(settings)["look_back_period_s"] == 12.5
    (auth,) = [d for d in deployment_configs(settings) if d["name"] == "Auth"]
    assert auth["autoscaling_config"].get("look_back_period_s", 30.0) == 30.0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"MARKETPLACE_RAY_INCLUDE_DASHBOARD": "true"}, True),
        ({"MARKETPLACE_RAY_INCLUDE_DASHBOARD": "false"}, False),
    ],
)
def test_a_local_ray_starts_its_dashboard_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert runtime.init_ray(settings_from_env(env)) == (True, True)
    assert [call["include_dashboard"] for call in calls] == [expected]
