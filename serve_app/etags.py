"""Product versions as HTTP entity tags: ``ETag: "<version>"`` on every answer that carries a
product, and ``If-Match`` on product writes (RFC 9110, section 13.1.1: strong comparison), so a
client that read version 4 can say "change it only if it is still 4" and hear 412 instead of
overwriting someone else's change."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header

MAX_IF_MATCH = 1000
_STRONG = re.compile(r'^"(\d{1,18})"$')


def etag(version: int) -> str:
    """The entity tag of a product version."""
    return f'"{version}"'


def if_match_versions(header: str | None) -> tuple[int, ...] | None:
    """The versions an ``If-Match`` header accepts: None for no condition (no header, or
    ``*``: the product must merely exist, as every write already requires); otherwise the
    versions its strong tags name, possibly none (a weak tag ``W/"4"`` never matches under
    strong comparison, and a tag that is not one of ours names no version)."""
    if header is None or header.strip() == "*":
        return None
    versions = []
    for tag in header.split(","):
        match = _STRONG.match(tag.strip())
        if match is not None:
            versions.append(int(match.group(1)))
    return tuple(versions)


async def if_match_header(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=MAX_IF_MATCH,
            description='Change only from these versions: the ETag of a read ("4"); '
            "412 version_mismatch otherwise",
        ),
    ] = None,
) -> tuple[int, ...] | None:
    """The one dependency that reads ``If-Match``."""
    return if_match_versions(if_match)


IfMatch = Annotated[tuple[int, ...] | None, Depends(if_match_header)]
