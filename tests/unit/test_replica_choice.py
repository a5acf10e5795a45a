"""Which replica a catalog read goes to (``actors.catalog_reads``): in turn, or for a session
token, one known to have caught up. Routing only: no call is made, so no Ray."""

from __future__ import annotations

import pytest

from actors.catalog_reads import ReplicaReads
from actors.directory import Directory
from marketplace.config import Settings

pytestmark = pytest.mark.unit


def reads(**settings: object) -> ReplicaReads:
    return ReplicaReads(Directory(Settings.model_validate(settings)))


def test_reads_without_a_token_take_the_shards_replicas_in_turn() -> None:
    two = reads(catalog_shards=2, catalog_replicas=2, catalog_consistency="eventual")
    assert two.enabled
    assert sorted(two._pick(1) for _ in range(4)) == [2, 2, 3, 3]


def test_a_session_read_goes_to_a_replica_known_to_have_caught_up() -> None:
    two = reads(catalog_replicas=2, catalog_consistency="session")
    two._saw(0, 5)
    two._saw(1, 9)
    assert {two._pick(0, need=7) for _ in range(4)} == {1}
    assert {two._pick(0, need=5) for _ in range(4)} == {0, 1}
    # None has caught up: the one furthest along has the best chance.
    assert two._pick(0, need=12) == 1


def test_strong_reads_and_no_replicas_leave_the_replicas_alone() -> None:
    assert not reads(catalog_replicas=2).enabled
    assert not reads(catalog_consistency="eventual").enabled
