"""A mapping that keeps only its most recently used entries: an actor's bounded cache of
settled work, whose full record is in the store."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import ItemsView, Iterator, MutableMapping, ValuesView
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(MutableMapping[K, V]):
    """At most ``limit`` entries; setting one past it drops the least recently used.

    ``limit`` None keeps every entry (where memory is the only or the newest copy and must not
    forget). Reading an entry (``get``, ``[]``) counts as a use; ``in`` and going over the
    entries (``values``, ``items``: a snapshot, say) do not, and leave the order as it is.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()
        # How many entries the limit has pushed out: while none, memory still has all it held.
        self.dropped = 0

    def __getitem__(self, key: K) -> V:
        value = self._entries[key]
        self._entries.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if self.limit is not None:
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
                self.dropped += 1

    def __delitem__(self, key: K) -> None:
        del self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> ValuesView[V]:
        """The values, oldest use first, without counting as uses."""
        return self._entries.values()

    def items(self) -> ItemsView[K, V]:
        """The entries, oldest use first, without counting as uses."""
        return self._entries.items()
