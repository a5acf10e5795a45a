"""Access tokens: verification, the memo of tokens already verified, and their versions."""

from __future__ import annotations

import time
from datetime import datetime

import jwt
import pytest

from marketplace.domain.users import Principal, Role, User
from serve_app import tokens
from serve_app.revocations import Revocations
from serve_app.tokens import InvalidToken, TokenService

pytestmark = pytest.mark.unit

USER = User(id="usr_1", email="a@example.com", name="A", role=Role.BUYER, password_hash="x")


def test_a_token_is_decoded_once_and_then_known(monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService("s" * 40, ttl_s=900)
    token = service.issue(USER)
    decodes: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(
        tokens.jwt, "decode", lambda t, *a, **k: decodes.append(t) or real_decode(t, *a, **k)
    )
    assert service.verify(token) == Principal(id="usr_1", role=Role.BUYER)
    assert service.verify(token) == Principal(id="usr_1", role=Role.BUYER)
    assert decodes == [token]


def test_a_known_token_is_refused_once_it_expires() -> None:
    service = TokenService("s" * 40, ttl_s=900)
    expires = int(time.time()) + 1
    token = service.issue(USER, now=expires - 900)
    assert service.verify(token).id == "usr_1"  # valid now, and remembered
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(InvalidToken):
        service.verify(token)


def test_a_forged_token_is_never_remembered() -> None:
    service = TokenService("s" * 40, ttl_s=900)
    forged = TokenService("t" * 40, ttl_s=900).issue(USER)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            service.verify(forged)


def _revocations(*known: tuple[str, int]) -> Revocations:
    async def nothing(since: datetime) -> list[tuple[str, int, datetime]]:
        return []

    revocations = Revocations(nothing, token_ttl_s=900, poll_s=1)
    for user_id, version in known:
        revocations.note(user_id, version)
    return revocations


def test_a_token_carries_its_users_version() -> None:
    service = TokenService("s" * 40, ttl_s=900)
    claims = jwt.decode(
        service.issue(USER.model_copy(update={"token_version": 3})),
        options={"verify_signature": False},
    )
    assert claims["ver"] == 3


def test_a_token_of_an_older_version_is_refused_even_once_known() -> None:
    revocations = _revocations()
    service = TokenService("s" * 40, ttl_s=900, revocations=revocations)
    old = service.issue(USER)
    assert service.verify(old).id == "usr_1"  # remembered as verified
    revocations.note("usr_1", 1)
    with pytest.raises(InvalidToken, match="revoked"):
        service.verify(old)
    fresh = service.issue(USER.model_copy(update={"token_version": 1}))
    assert service.verify(fresh).id == "usr_1"
    assert TokenService("s" * 40, ttl_s=900, revocations=_revocations()).verify(old).id == "usr_1"


def test_a_token_without_a_version_is_version_zero() -> None:
    """Tokens issued before versions existed stay valid until their user changes."""
    claims = {"sub": "usr_1", "role": "buyer", "iss": tokens.ISSUER, "aud": tokens.AUDIENCE}
    now = int(time.time())
    token = jwt.encode({**claims, "iat": now, "exp": now + 60}, "s" * 40, algorithm="HS256")
    assert TokenService("s" * 40, 900, _revocations(("usr_2", 5))).verify(token).id == "usr_1"
    with pytest.raises(InvalidToken):
        TokenService("s" * 40, 900, _revocations(("usr_1", 1))).verify(token)


@pytest.mark.parametrize("version", ["1", 1.5, True, None, [1]])
def test_a_token_version_that_is_not_an_integer_is_refused(version: object) -> None:
    now = int(time.time())
    claims = {
        "sub": "usr_1",
        "role": "buyer",
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "ver": version,
    }
    token = jwt.encode(claims, "s" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenService("s" * 40, ttl_s=900).verify(token)
