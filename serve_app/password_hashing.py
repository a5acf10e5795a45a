"""The Auth deployment: argon2id password hashing and checking on its own autoscaled replicas,
so the CPU-heavy work never starves the ingress's event loop. The gateway calls it at
registration (hash) and login (verify); it is the one place a password is checked."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from marketplace.passwords import hash_password, verify_password

# A real hash to verify against when the user does not exist, so both paths cost the same.
_DUMMY = hash_password("no-such-user-password")


@serve.deployment(name="Auth")
class Auth:
    """Hash and verify passwords."""

    async def hash_password(self, password: str) -> str:
        """An argon2id hash of ``password``."""
        return await asyncio.to_thread(hash_password, password)

    async def verify_password(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches (False, at the same cost, when there is no hash)."""
        return await asyncio.to_thread(verify_password, password_hash or _DUMMY, password) and (
            password_hash is not None
        )


class AuthCalls:
    """The gateway's side of the Auth deployment: its two calls, typed."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.handle = handle

    async def hash_password(self, password: str) -> str:
        """``Auth.hash_password`` on one of its replicas."""
        password_hash: str = await self.handle.hash_password.remote(password)
        return password_hash

    async def verify_password(self, password_hash: str | None, password: str) -> bool:
        """``Auth.verify_password`` on one of its replicas."""
        ok: bool = await self.handle.verify_password.remote(password_hash, password)
        return ok
