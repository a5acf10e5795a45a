"""Users live in the store directly: they are read on every login, never contended."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.domain.errors import Conflict
from marketplace.domain.ids import new_id
from marketplace.domain.users import Role, User, validate_registration
from marketplace.passwords import hash_password, verify_password
from marketplace.store.engine import pool_size
from marketplace.store.rows import utcnow
from marketplace.store.tables import users

# A pool without a fixed size (SQLite's static pool) holds one connection that calls share.
BULK_CONCURRENCY_WITHOUT_POOL = 4


class UserStore:
    """Registration and lookup (passwords are checked by the gateway's Auth deployment)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def bulk_concurrency(self) -> int:
        """How many calls a bulk job (seeding) may have in flight on this store at once.

        One less than the connections the engine's pool keeps: a burst beyond the pool waits
        in it, and on a loaded machine (SQLite's write lock held, slow commits) long enough
        for the pool's timeout to fail the job; the one left over serves the process's other
        queries meanwhile.
        """
        size = pool_size(self.engine)
        return max(1, size - 1) if size is not None else BULK_CONCURRENCY_WITHOUT_POOL

    async def register(
        self, email: str, password: str, name: str, role: Role, *, password_hash: str | None = None
    ) -> User:
        """Create a user; Conflict if the email is taken. ``password_hash`` skips hashing
        (bulk seeding reuses one hash)."""
        email = validate_registration(email, password, name)
        hashed = password_hash or await asyncio.to_thread(hash_password, password)
        user = User(
            id=new_id("usr"), email=email, name=name.strip(), role=role, password_hash=hashed
        )
        try:
            async with self.engine.begin() as conn:
                await conn.execute(users.insert(), [{**user.model_dump(), "created_at": utcnow()}])
        except IntegrityError:
            raise Conflict("a user with this email exists", field="email") from None
        return user

    async def by_email(self, email: str) -> User | None:
        """The user with this email, if any."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.email == email.strip().lower())))
                .mappings()
                .first()
            )
        return None if row is None else User.model_validate(dict(row))

    async def by_id(self, user_id: str) -> User | None:
        """The user with this id, if any."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
            )
        return None if row is None else User.model_validate(dict(row))

    async def ensure_admin(self, email: str, password: str) -> User:
        """The admin account with this email and password: created if missing, its password
        (and role) set when the configured ones changed, so rotating
        ``MARKETPLACE_ADMIN_PASSWORD`` takes effect at the next start."""
        user = await self.ensure(email, password, "Admin", Role.ADMIN)
        if user.role is Role.ADMIN and await asyncio.to_thread(
            verify_password, user.password_hash, password
        ):
            return user
        validate_registration(email, password, user.name)
        hashed = await asyncio.to_thread(hash_password, password)
        changed = await self._set_credentials(user.id, hashed, role=Role.ADMIN)
        assert changed is not None  # users are never deleted
        return changed

    async def set_password(
        self, user_id: str, password_hash: str, *, expected_hash: str | None = None
    ) -> User | None:
        """Store a new password hash and revoke the user's tokens (their version goes up).

        With ``expected_hash`` only while the stored hash is still that one (the caller proved
        the old password against it), so of two changes racing, the second changes nothing.
        None when no user matched: unknown, or its hash was no longer ``expected_hash``.
        """
        return await self._set_credentials(user_id, password_hash, expected_hash=expected_hash)

    async def _set_credentials(
        self,
        user_id: str,
        password_hash: str,
        *,
        role: Role | None = None,
        expected_hash: str | None = None,
    ) -> User | None:
        condition = users.c.id == user_id
        if expected_hash is not None:
            condition &= users.c.password_hash == expected_hash
        values = {
            "password_hash": password_hash,
            "token_version": users.c.token_version + 1,
            "tokens_revoked_at": utcnow(),
        }
        if role is not None:
            values["role"] = role.value
        async with self.engine.begin() as conn:
            updated = await conn.execute(users.update().where(condition).values(values))
            if updated.rowcount != 1:
                return None
            row = (await conn.execute(select(users).where(users.c.id == user_id))).mappings().one()
        return User.model_validate(dict(row))

    async def revocations_since(self, since: datetime) -> list[tuple[str, int, datetime]]:
        """(user id, token version, when) of every user whose tokens were revoked at or after
        ``since``: what a gateway replica needs to refuse the tokens issued before."""
        query = select(users.c.id, users.c.token_version, users.c.tokens_revoked_at).where(
            users.c.tokens_revoked_at >= since
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row[0], row[1], row[2]) for row in rows]

    async def ensure(self, email: str, password: str, name: str, role: Role) -> User:
        """The user with this email, created if missing (the admin account at start-up)."""
        existing = await self.by_email(email)
        if existing is not None:
            return existing
        try:
            return await self.register(email, password, name, role)
        except Conflict:
            found = await self.by_email(email)
            assert found is not None
            return found
