"""How many actors of each kind: one list of settings (``marketplace.config.ACTOR_COUNTS``), which
the directory routes by and the CLI records for processes that join a running marketplace."""

from __future__ import annotations

import pytest

from actors.directory import ALL_KINDS, BRIDGE_KINDS, Directory
from marketplace.config import ACTOR_COUNTS, Settings

pytestmark = pytest.mark.unit


def test_every_count_setting_is_a_setting_and_counts_one_kind() -> None:
    distinct = {name: 2 + i for i, name in enumerate(ACTOR_COUNTS)}
    settings = Settings(**distinct)
    assert settings.actor_counts() == distinct
    directory = Directory(settings)
    counted = sorted(directory.count(kind) for kind in ALL_KINDS if directory.count(kind) > 1)
    assert counted == sorted(distinct.values())  # each setting drives exactly one kind
    singles = [kind.name for kind in (*ALL_KINDS, *BRIDGE_KINDS) if directory.count(kind) == 1]
    assert singles == ["sellers", "relay", "inbound"]
