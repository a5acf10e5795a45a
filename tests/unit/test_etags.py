"""If-Match parsing (serve_app/etags.py): the versions a conditional product write accepts."""

from __future__ import annotations

import pytest

from serve_app.etags import etag, if_match_versions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        (" * ", None),
        ('"4"', (4,)),
        ('"4", "9"', (4, 9)),
        ('W/"4"', ()),
        ('W/"4", "5"', (5,)),
        ("4", ()),
        ('"x"', ()),
        ("", ()),
        ('"' + "9" * 19 + '"', ()),  # beyond any version
    ],
)
def test_if_match_versions(header: str | None, versions: tuple[int, ...] | None) -> None:
    assert if_match_versions(header) == versions


def test_the_etag_of_a_version_is_what_if_match_accepts() -> None:
    assert if_match_versions(etag(12)) == (12,)
