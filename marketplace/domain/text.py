"""Text the store can keep: PostgreSQL refuses U+0000 in any text value, and no UTF-8 encodes an
unpaired surrogate (JSON's ``"\\ud800"`` decodes to one), so both are refused at the edge, as bad
input, before anything is changed (SQLite would keep them, and the two stores must agree)."""

from __future__ import annotations

from collections.abc import Mapping

UNSTORABLE = "holds a character that cannot be stored (U+0000 or an unpaired surrogate)"


def storable(text: str) -> bool:
    """Whether ``text`` can be stored as it is."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def all_storable(value: object) -> bool:
    """``storable`` for every string in ``value``, through lists, tuples, sets and mappings
    (keys too)."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, Mapping):
        return all(all_storable(k) and all_storable(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return all(all_storable(item) for item in value)
    return True
