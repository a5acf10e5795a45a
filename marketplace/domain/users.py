"""Users and roles."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from marketplace.domain.errors import InvalidInput

_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


class Role(StrEnum):
    """What a user may do. Buyers and sellers register themselves; admins and carriers are made."""

    BUYER = "buyer"
    SELLER = "seller"
    ADMIN = "admin"
    CARRIER = "carrier"


class User(BaseModel):
    """A registered user; the password hash never leaves the store layer's callers."""

    model_config = ConfigDict(frozen=True)

    id: str
    email: str
    name: str
    role: Role
    password_hash: str
    # Tokens carry the version they were issued at; changing the password or the role bumps it,
    # which revokes every token issued before.
    token_version: int = 0


def normalize_email(email: str) -> str:
    """Lower-case, trimmed, and shaped like an address; raises InvalidInput otherwise."""
    cleaned = email.strip().lower()
    if not _EMAIL_RE.match(cleaned):
        raise InvalidInput("email is not a valid address", field="email")
    return cleaned


def validate_password(password: str, field: str = "password") -> None:
    """The rules every new password meets (registration, a change, an admin's reset);
    raises InvalidInput naming ``field`` otherwise."""
    if not 8 <= len(password) <= 256:
        raise InvalidInput("password must be 8 to 256 characters", field=field)
    if not password.strip():
        raise InvalidInput("password must not be only whitespace", field=field)


def validate_registration(email: str, password: str, name: str) -> str:
    """Check a registration; returns the normalized email."""
    validate_password(password)
    if not 1 <= len(name.strip()) <= 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    return normalize_email(email)


class Principal(BaseModel):
    """Who is asking: enough of a user to decide what they may see and do."""

    model_config = ConfigDict(frozen=True)

    id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Admins may act on anyone's resources."""
        return self.role is Role.ADMIN
