"""Text the store can keep (marketplace.domain.text): what PostgreSQL and UTF-8 refuse."""

from __future__ import annotations

import json

import pytest

from marketplace.domain.text import all_storable, storable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("plain", True),
        ("", True),
        ("émoji 🛒 and 中文", True),
        ("nul\x00inside", False),
        ("\x00", False),
        (json.loads('"half \\ud800"'), False),  # what a JSON body can decode to
        (json.loads('"\\udfff"'), False),
        (json.loads('"\\ud83d\\uded2"'), True),  # a surrogate pair is one character: 🛒
    ],
)
def test_storable(text: str, ok: bool) -> None:
    assert storable(text) is ok


def test_all_storable_looks_through_containers_and_keys() -> None:
    assert all_storable({"a": ["b", ("c", {"d"})], "n": 1, "none": None})
    assert not all_storable({"a": ["b", ("c", {"d\x00"})]})
    assert not all_storable({"key\x00": "value"})
    assert not all_storable([json.loads('"\\ud800"')])
