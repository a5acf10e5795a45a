"""Token buckets, the sign-in policy the gateway replicas share and the per-replica shares of the
checkout limit (serve_app/rate_limits.py, serve_app/replica_count.py)."""

from __future__ import annotations

import pytest

from serve_app.rate_limits import RateLimiter, ReplicaShare, SignInPolicy
from serve_app.replica_count import LiveReplicas, Presence

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


def test_a_replica_share_is_the_rate_divided_by_the_live_replicas() -> None:
    share = ReplicaShare(60)
    assert sum(share.check("buyer", now=0.0) == 0 for _ in range(100)) == 60
    assert share.check("other", now=0.0) == 0  # 59 tokens left at the whole rate
    share.resize(3)
    # A fuller bucket is cut to the new capacity at its next check, not kept at the old one.
    assert sum(share.check("other", now=0.0) == 0 for _ in range(100)) == 20
    fresh = ReplicaShare(60, replicas=3)
    assert sum(fresh.check("buyer", now=0.0) == 0 for _ in range(100)) == 20
    share.resize(1000)  # more replicas than the rate: each still lets one through
    assert share.limiter.rate_per_minute == 1
    share.resize(0)  # nobody counted yet: the whole rate, not a division by zero
    assert share.limiter.rate_per_minute == 60


def test_three_replicas_let_a_buyer_spread_over_them_no_more_than_the_rate() -> None:
    shares = [ReplicaShare(30, replicas=3) for _ in range(3)]
    allowed = sum(shares[i % 3].check("buyer", now=0.0) == 0 for i in range(90))
    assert allowed == 30


def test_presence_counts_the_replicas_heard_from_within_its_window() -> None:
    presence = Presence(ttl_s=15)
    assert presence.heard("a", now=0.0) == 1
    assert presence.heard("b", now=1.0) == 2
    assert presence.heard("a", now=5.0) == 2  # a beat again: still two
    assert presence.count(now=16.5) == 1  # b was last heard at 1.0
    assert presence.heard("c", now=21.0) == 1  # a too is gone now


async def test_a_heartbeat_resizes_the_shares_and_an_unanswered_one_keeps_them() -> None:
    answers: list[int | None] = [2, None, 4]
    heard: list[str] = []

    async def beat(replica_id: str) -> int | None:
        heard.append(replica_id)
        return answers.pop(0)

    checkout = ReplicaShare(600)
    live = LiveReplicas(beat, 5.0, (checkout,))
    await live.beat_once()
    assert checkout.limiter.rate_per_minute == 300
    await live.beat_once()
    assert checkout.limiter.rate_per_minute == 300
    await live.beat_once()
    assert checkout.limiter.rate_per_minute == 150
    assert heard == [live.replica_id] * 3
