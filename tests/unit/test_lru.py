"""``LruCache``: the bounded cache the inventory partitions and catalog shards keep."""

from __future__ import annotations

import pytest

from actors.lru import LruCache

pytestmark = pytest.mark.unit


def test_it_drops_the_least_recently_used_past_its_limit() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # a use: "b" is now the oldest
    cache["c"] = 3
    assert dict(cache) == {"a": 1, "c": 3}
    cache["a"] = 4  # setting is a use too
    cache["d"] = 5
    assert dict(cache) == {"a": 4, "d": 5}
    assert cache.pop("a") == 4 and "a" not in cache and len(cache) == 1


def test_a_zero_limit_keeps_nothing_and_none_keeps_everything() -> None:
    empty: LruCache[str, int] = LruCache(0)
    empty["a"] = 1
    assert not empty
    unbounded: LruCache[int, int] = LruCache(None)
    unbounded.update((n, n) for n in range(1000))
    assert len(unbounded) == 1000


def test_going_over_the_entries_is_not_a_use() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache["a"], cache["b"] = 1, 2
    assert list(cache.values()) == [1, 2] and list(cache.items()) == [("a", 1), ("b", 2)]
    cache["c"] = 3  # "a" is still the oldest
    assert list(cache) == ["b", "c"]
