"""JWT access tokens (PyJWT, HS256 pinned): issued at login, checked on every call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt

from marketplace.config import Settings
from marketplace.domain.users import Principal, Role, User

ALGORITHM = "HS256"
ISSUER = "marketplace"
AUDIENCE = "marketplace-api"


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or for someone else."""


# Verified tokens kept per replica; past this many the memo starts over.
VERIFIED_MEMO_SIZE = 100_000


@dataclass(frozen=True)
class TokenService:
    """Issues and checks access tokens."""

    secret: str
    ttl_s: int
    # token -> (exp, principal). A token's signature and claims never change, only the clock
    # moves, so a token verified once needs only its expiry checked again. Decoding is most of
    # an authenticated request's own CPU in the gateway.
    _verified: dict[str, tuple[int, Principal]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        """The service for these settings."""
        return cls(settings.signing_secret(), settings.jwt_ttl_s)

    def issue(self, user: User, now: float | None = None) -> str:
        """A signed token for ``user``."""
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": user.id,
            "role": user.role.value,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self.ttl_s,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal a valid token stands for; InvalidToken otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[0]:  # PyJWT's own test: expired once exp <= now
                return known[1]
            del self._verified[token]
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            principal = Principal(id=str(claims["sub"]), role=Role(claims["role"]))
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise InvalidToken(str(exc)) from None
        if len(self._verified) >= VERIFIED_MEMO_SIZE:
            self._verified.clear()
        self._verified[token] = (int(claims["exp"]), principal)
        return principal
