"""JWT access tokens (PyJWT, HS256 pinned): issued at login, checked on every call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt

from marketplace.config import Settings
from marketplace.domain.users import Principal, Role, User
from serve_app.revocations import Revocations

ALGORITHM = "HS256"
ISSUER = "marketplace"
AUDIENCE = "marketplace-api"


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired, revoked or for someone else."""


# Verified tokens kept per replica; past this many the memo starts over.
VERIFIED_MEMO_SIZE = 100_000


@dataclass(frozen=True)
class TokenService:
    """Issues and checks access tokens."""

    secret: str
    ttl_s: int
    # The replica's view of revoked token versions; None checks no versions (tests of the
    # signature alone).
    revocations: Revocations | None = field(default=None, compare=False, repr=False)
    # token -> (exp, principal, version). A token's signature and claims never change, only
    # the clock moves and its user's version may go up, so a token verified once needs only
    # those two checked again. Decoding is most of an authenticated request's own CPU in the
    # gateway.
    _verified: dict[str, tuple[int, Principal, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_settings(
        cls, settings: Settings, revocations: Revocations | None = None
    ) -> TokenService:
        """The service for these settings, refusing what ``revocations`` revoked."""
        return cls(settings.signing_secret(), settings.jwt_ttl_s, revocations)

    def issue(self, user: User, now: float | None = None) -> str:
        """A signed token for ``user``, at its current token version."""
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": user.id,
            "role": user.role.value,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "ver": user.token_version,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal a valid token stands for; InvalidToken otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[0]:  # PyJWT's own test: expired once exp <= now
                return self._unrevoked(known[1], known[2])
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
            # Tokens issued before versions existed carry none: version 0, every user's first.
            version = claims.get("ver", 0)
            if not isinstance(version, int) or isinstance(version, bool):
                raise ValueError("the token version is not an integer")
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise InvalidToken(str(exc)) from None
        if len(self._verified) >= VERIFIED_MEMO_SIZE:
            self._verified.clear()
        self._verified[token] = (int(claims["exp"]), principal, version)
        return self._unrevoked(principal, version)

    def _unrevoked(self, principal: Principal, version: int) -> Principal:
        if self.revocations is not None and self.revocations.refuses(principal.id, version):
            raise InvalidToken("the token was revoked (password or role changed)")
        return principal
