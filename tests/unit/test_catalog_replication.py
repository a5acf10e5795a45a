"""The pieces of catalog replication that need no Ray: the shard's change log, what a replica
holds as it applies changes late, and the session token."""

from __future__ import annotations

import pytest

from marketplace.domain.change_log import ChangeLog
from marketplace.domain.replica_state import ReplicaState
from marketplace.domain.session_token import CatalogSession, decode, encode, merge
from tests.unit.factories import make_product

pytestmark = pytest.mark.unit


def test_the_sequence_number_is_the_sum_of_versions_and_survives_a_reload() -> None:
    log = ChangeLog()
    log.load([make_product(1, version=3), make_product(2, version=2)])
    assert log.seq == 5
    change = log.record(make_product(1, version=4), made_at=10.0)
    assert change is not None and change.seq == 6
    # A shard that restarts rebuilds the same number from its products.
    again = ChangeLog()
    again.load([make_product(1, version=4), make_product(2, version=2)])
    assert again.seq == log.seq


def test_a_change_no_newer_than_known_is_not_recorded() -> None:
    log = ChangeLog()
    assert log.record(make_product(1, version=1), 1.0) is not None
    assert log.record(make_product(1, version=1), 2.0) is None
    assert log.seq == 1


def test_since_answers_the_changes_a_reader_lacks_in_order() -> None:
    log = ChangeLog()
    for version in (1, 2, 3):
        log.record(make_product(1, version=version), float(version))
    log.record(make_product(2, version=1), 4.0)
    assert [c.seq for c in log.since(1) or []] == [2, 3, 4]
    assert log.since(4) == []


def test_a_reader_behind_the_kept_changes_or_ahead_of_the_log_needs_a_snapshot() -> None:
    log = ChangeLog(limit=2)
    for version in (1, 2, 3):
        log.record(make_product(1, version=version), 0.0)
    assert log.since(0) is None  # the change to 1 is no longer kept
    assert [c.seq for c in log.since(1) or []] == [2, 3]
    assert log.since(9) is None
    loaded = ChangeLog()
    loaded.load([make_product(1, version=5)])
    assert loaded.since(0) is None  # a new replica of a loaded shard
    assert loaded.since(5) == []


def test_a_replica_applies_each_change_its_delay_after_it_was_made() -> None:
    log = ChangeLog()
    first = make_product(1, version=1, price_cents=100)
    log.record(first, made_at=0.0)
    state = ReplicaState(delay_s=0.3)
    state.reset(log.seq, [first])
    change = log.record(first.model_copy(update={"version": 2, "price_cents": 200}), 10.0)
    assert change is not None
    state.receive([change])
    assert state.apply_due(10.1) == []
    assert state.stale(first.id) and state.products[first.id].price_cents == 100
    assert state.next_due() == pytest.approx(10.3)
    assert state.apply_due(10.35) == [pytest.approx(0.35)]
    assert not state.stale(first.id)
    assert state.products[first.id].price_cents == 200
    assert state.applied == 2
    hits = state.index.search("product", category=None, seller_id=None, limit=5, after=None)
    assert [hit.product.version for hit in hits] == [2]


def test_a_replica_ignores_changes_it_has_and_a_snapshot_replaces_everything() -> None:
    state = ReplicaState()
    log = ChangeLog()
    change = log.record(make_product(1), 0.0)
    assert change is not None
    state.receive([change])
    state.receive([change])
    assert state.apply_due(0.0) == [0.0]
    state.reset(7, [make_product(2, version=7)])
    assert set(state.products) == {make_product(2).id}
    assert (state.applied, state.known) == (7, 7)


def test_a_token_round_trips_and_merges_by_the_furthest_seq() -> None:
    token = {0: 5, 3: 12}
    assert decode(encode(token), shards=4) == token
    assert merge({0: 5, 1: 2}, {0: 3, 2: 9}) == {0: 5, 1: 2, 2: 9}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "s2.0-1",  # another format
        "s1.0-x",
        "s1.0_1",
        "s1.-1-2",
        "s1.9-1",  # a shard this catalog does not have
        "s1.0-²",  # a digit int() refuses
        "s1." + ".".join(f"0-{n}" for n in range(3000)),  # too long
    ],
)
def test_a_token_that_does_not_parse_counts_as_none(value: str | None) -> None:
    assert decode(value, shards=4) == {}


def test_a_session_answers_a_token_only_once_it_saw_something() -> None:
    session = CatalogSession.from_header("s1.1-4", shards=2)
    assert session.needs(1) == 4 and session.needs(0) == 0
    assert session.header() is None
    session.saw(1, 2)  # an owner's older number never lowers the token
    session.saw(0, 3)
    assert session.header() == "s1.0-3.1-4"
