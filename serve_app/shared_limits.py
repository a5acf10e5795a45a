"""The Limits deployment: the one place every gateway replica counts logins and registrations,
and where the replicas count themselves (``serve_app/replica_count.py``).

Per-replica buckets let an attacker try as many passwords as there are replicas times the limit,
and autoscaling would raise it further; one replica of this deployment holds the buckets for all
of them (``SignInPolicy``, ``serve_app/rate_limits.py``). A call costs well under a millisecond
of the caller's time against the tens that the argon2 hash it guards costs. Its buckets live in
memory: a restart of its replica starts them full again.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.rate_limits import SignInPolicy
from serve_app.replica_count import BEATS_REMEMBERED, Presence

log = logging.getLogger(__name__)


@serve.deployment(name="Limits", num_replicas=1, max_ongoing_requests=1024)
class Limits:
    """Sign-in limits for the whole application (rates per minute), and the gateway replicas
    alive (each beats every ``heartbeat_s``)."""

    def __init__(
        self,
        login_per_account: int,
        login_per_address: int,
        registration_per_address: int,
        registration_overall: int,
        heartbeat_s: float,
    ) -> None:
        self.policy = SignInPolicy.of(
            login_per_account=login_per_account,
            login_per_address=login_per_address,
            registration_per_address=registration_per_address,
            registration_overall=registration_overall,
        )
        self.gateways = Presence(ttl_s=BEATS_REMEMBERED * heartbeat_s)

    async def login(self, account: str, address: str) -> float:
        """``SignInPolicy.login``."""
        return self.policy.login(account, address)

    async def register(self, address: str) -> float:
        """``SignInPolicy.register``."""
        return self.policy.register(address)

    async def gateway_alive(self, replica_id: str) -> int:
        """``Presence.heard``: the gateway replicas alive, ``replica_id`` among them."""
        return self.gateways.heard(replica_id)

    async def gateways_alive(self) -> int:
        """``Presence.count``, without counting anyone in (tests, operators)."""
        return self.gateways.count()


class LimitsCalls:
    """The gateway's side of the Limits deployment (``SignInLimits``).

    If the deployment cannot answer (its replica restarting), the attempt is let through with a
    warning: the password check behind it still holds, and logins do not stop with it.
    """

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.handle = handle

    async def login(self, account: str, address: str) -> float:
        """``Limits.login`` on its replica."""
        return await self._ask("login", account, address)

    async def register(self, address: str) -> float:
        """``Limits.register`` on its replica."""
        return await self._ask("register", address)

    async def gateway_alive(self, replica_id: str) -> int | None:
        """``Limits.gateway_alive``; None (logged) when it could not answer."""
        try:
            count: int = await self.handle.gateway_alive.remote(replica_id)
        except Exception as exc:
            log.warning("the Limits deployment did not count the replicas (%r)", exc)
            return None
        return count

    async def _ask(self, method: str, *args: str) -> float:
        try:
            wait: float = await getattr(self.handle, method).remote(*args)
        except Exception as exc:  # any failure of the call: let it through
            log.warning("the Limits deployment did not answer %s (%r); not limited", method, exc)
            return 0.0
        return wait
