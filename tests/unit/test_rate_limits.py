"""Token buckets and the sign-in policy the gateway replicas share (serve_app/rate_limits.py)."""

from __future__ import annotations

import pytest

from serve_app.rate_limits import RateLimiter, SignInPolicy

pytestmark = pytest.mark.unit


def policy(**rates: int) -> SignInPolicy:
    defaults = {
        "login_per_account": 3,
        "login_per_address": 5,
        "registration_per_address": 2,
        "registration_overall": 3,
    }
    return SignInPolicy.of(**(defaults | rates))


def test_a_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    limiter = RateLimiter(60)  # one a second, bursts of 60
    assert all(limiter.check("k", now=0.0) == 0 for _ in range(60))
    assert limiter.check("k", now=0.0) == pytest.approx(1.0)
    assert limiter.check("k", now=0.5) == pytest.approx(0.5)
    assert limiter.check("k", now=1.0) == 0


def test_past_its_keys_the_least_recently_used_bucket_goes_not_all_of_them() -> None:
    limiter = RateLimiter(1, max_keys=2)
    assert limiter.check("attacked", now=0.0) == 0
    assert limiter.check("a", now=0.0) == 0
    assert limiter.check("attacked", now=0.0) > 0  # in use: now the most recent
    assert limiter.check("b", now=0.0) == 0  # drops "a", the least recently used
    assert len(limiter) == 2
    assert limiter.check("attacked", now=0.0) > 0  # still spent: many keys did not reset it
    assert limiter.check("a", now=0.0) == 0  # forgotten, so full again


def test_a_flood_against_an_account_does_not_lock_its_owner_out_elsewhere() -> None:
    limits = policy()
    assert [limits.login("victim", "attacker", now=0.0) == 0 for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert limits.login("victim", "home", now=0.0) == 0
    assert limits.login("other", "attacker", now=0.0) == 0  # the address has tokens left


def test_one_address_cannot_try_many_accounts_fast() -> None:
    limits = policy()
    allowed = [limits.login(f"user{i}", "attacker", now=0.0) == 0 for i in range(7)]
    assert allowed == [True] * 5 + [False] * 2
    assert limits.login("user0", "elsewhere", now=0.0) == 0


def test_a_refused_login_spends_no_token_of_the_address() -> None:
    limits = policy(login_per_account=1, login_per_address=2)
    assert limits.login("a", "x", now=0.0) == 0
    for _ in range(5):
        assert limits.login("a", "x", now=0.0) > 0  # the pair's bucket refuses first
    assert limits.login("b", "x", now=0.0) == 0  # so the address kept its second token


def test_registrations_are_limited_per_address_and_overall() -> None:
    limits = policy()
    assert limits.register("x", now=0.0) == 0
    assert limits.register("x", now=0.0) == 0
    assert limits.register("x", now=0.0) > 0  # two per address
    assert limits.register("y", now=0.0) == 0  # the third of everyone's
    assert limits.register("z", now=0.0) > 0  # a fresh address meets the overall limit
    assert limits.register("z", now=20.0) == 0  # three a minute: one more after 20 s
