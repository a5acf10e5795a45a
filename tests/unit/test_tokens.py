"""Access tokens: verification, and the memo of tokens already verified."""

from __future__ import annotations

import time

import jwt
import pytest

from marketplace.domain.users import Principal, Role, User
from serve_app import tokens
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
