"""The Serve application: ``serve_app.app:app`` (settings from the environment), or
``build_app(settings)`` for a given configuration."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from marketplace.config import Settings
from serve_app.gateway import Gateway
from serve_app.password_hashing import Auth
from serve_app.shared_limits import Limits

LIMITS_NUM_CPUS = 0.01


def autoscaling(settings: Settings, prefix: str) -> dict[str, Any]:
    """The ``autoscaling_config`` of the ``gateway`` or ``auth`` deployment."""
    return {
        "min_replicas": getattr(settings, f"{prefix}_min_replicas"),
        "initial_replicas": getattr(settings, f"{prefix}_min_replicas"),
        "max_replicas": getattr(settings, f"{prefix}_max_replicas"),
        "target_ongoing_requests": getattr(settings, f"{prefix}_target_ongoing_requests"),
        "upscale_delay_s": settings.upscale_delay_s,
        "downscale_delay_s": settings.downscale_delay_s,
    }


def gateway_autoscaling_config(
    settings: Settings, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The gateway deployment's ``autoscaling_config``: the shared options, its
    ``look_back_period_s``, then ``overrides``."""
    return {
        **autoscaling(settings, "gateway"),
        "look_back_period_s": settings.gateway_look_back_period_s,
        **(overrides or {}),
    }


def build_app(
    settings: Settings, *, gateway_autoscaling: dict[str, Any] | None = None
) -> Application:
    """The gateway bound to an auth deployment, both autoscaled per the settings, and to the
    Limits deployment (one replica) that counts sign-in attempts for all of them.

    ``gateway_autoscaling`` adds Serve autoscaling options the settings do not carry to the
    gateway's, or overrides those they do.
    """
    settings = settings.model_copy(update={"database_url": settings.resolved_database_url()})
    # On the deployments themselves: serve.start's logging_config covers only Serve's own
    # controller and proxy, so replicas kept writing one access-log line per request.
    logging_config = {"enable_access_log": settings.access_log}
    # serve.deployment turns the classes into Deployment objects; mypy sees the classes.
    auth = Auth.options(  # type: ignore[attr-defined]
        autoscaling_config=autoscaling(settings, "auth"),
        ray_actor_options={"num_cpus": settings.auth_num_cpus},
        max_ongoing_requests=settings.auth_max_ongoing_requests,
        logging_config=logging_config,
    ).bind()
    # One replica for every gateway replica: its buckets are the cluster's. It does a dict
    # lookup per call, so it asks for a sliver of a CPU: not none, which would let Ray place
    # it on a head node started with no CPUs, kept for the GCS and Serve's controller.
    limits = Limits.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": LIMITS_NUM_CPUS},
        logging_config=logging_config,
    ).bind(
        settings.login_rate_per_minute,
        settings.login_rate_per_address_per_minute,
        settings.registration_rate_per_address_per_minute,
        settings.registration_rate_per_minute,
        settings.gateway_heartbeat_s,
    )
    return Gateway.options(  # type: ignore[attr-defined,no-any-return]
        autoscaling_config=gateway_autoscaling_config(settings, gateway_autoscaling),
        ray_actor_options={"num_cpus": settings.gateway_num_cpus},
        max_ongoing_requests=max(1, int(settings.gateway_target_ongoing_requests * 4)),
        logging_config=logging_config,
    ).bind(settings.model_dump(), auth, limits)


def app_builder(args: dict[str, Any]) -> Application:
    """For ``serve run serve_app.app:app_builder key=value``: settings from args and env."""
    return build_app(Settings(**args))


app = build_app(Settings())
