"""What one gateway replica is configured with: the one holder of its per-replica state.

``Gateway.__init__`` starts a ``Replica`` once, and the replica's FastAPI app is built around it
(``serve_app.gateway.build_api``): routes reach it through ``request.app.state.replica``
(``serve_app.deps``) and the middlewares are given their part of it when the app is built. No
module of ``serve_app`` keeps configuration in a global, so nothing depends on which copy of a
module Serve's pickling left a value in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.serve.handle import DeploymentHandle

from actors.client import MarketplaceClient
from actors.wiring import connect, create_actors
from marketplace import trace_export
from marketplace.config import Settings
from serve_app.metrics import GatewayMetrics
from serve_app.password_hashing import AuthCalls
from serve_app.rate_limits import ReplicaShare, SignInLimits
from serve_app.replica_count import LiveReplicas
from serve_app.revocations import Revocations
from serve_app.shared_limits import LimitsCalls
from serve_app.tokens import TokenService


@dataclass(frozen=True)
class Replica:
    """The settings, the client, the Auth handle, the token keys, the revoked token versions
    and the rate limits of one gateway replica. Its replicas share nothing but the actors, the
    store and the Limits deployment."""

    settings: Settings
    client: MarketplaceClient
    # The Auth deployment (serve_app/password_hashing.py): argon2id off this event loop.
    auth: AuthCalls
    tokens: TokenService
    # Polled from the store (serve_app/revocations.py); ``tokens`` refuses what it revoked.
    revocations: Revocations
    # Logins and registrations, counted for every replica together (serve_app/shared_limits.py).
    sign_in: SignInLimits
    # Checkouts per buyer, counted per replica at its share of the rate (rate_limits.py).
    checkout_limit: ReplicaShare
    # Resizes the shares to the live replica count (serve_app/replica_count.py).
    live: LiveReplicas
    metrics: GatewayMetrics

    @classmethod
    def start(
        cls, settings: Settings, auth: DeploymentHandle[Any], limits: DeploymentHandle[Any]
    ) -> Replica:
        """Connect to the actors (made on first use) and the store, per ``settings``."""
        trace_export.configure(settings, "gateway", root=True)
        client = connect(settings)
        create_actors(client.directory)  # get-or-create: the first replica up makes the actors
        revocations = Revocations(
            client.users.revocations_since, settings.jwt_ttl_s, settings.revocation_poll_s
        )
        limits_calls = LimitsCalls(limits)
        checkout_limit = ReplicaShare(settings.checkout_rate_per_minute)
        return cls(
            settings=settings,
            client=client,
            auth=AuthCalls(auth),
            tokens=TokenService.from_settings(settings, revocations),
            revocations=revocations,
            sign_in=limits_calls,
            checkout_limit=checkout_limit,
            live=LiveReplicas(
                limits_calls.gateway_alive, settings.gateway_heartbeat_s, (checkout_limit,)
            ),
            metrics=GatewayMetrics(settings.namespace, settings.metrics),
        )
