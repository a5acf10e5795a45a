"""``X-Catalog-Session``: the catalog session token over HTTP (``session`` consistency).

With ``MARKETPLACE_CATALOG_CONSISTENCY=session`` and read replicas, product reads, searches and
product writes answer the header; a client that sends the last value it received back with its
next catalog request reads its own writes and never an older state than it has seen
(``actors/catalog_reads.py``). The value is opaque. A value the gateway cannot read counts as no
header (the read is then as fresh as ``eventual``'s): never an error. In every other mode, and
without replicas, no answer carries it and the header is ignored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Response

from marketplace.domain.session_token import HEADER, CatalogSession
from serve_app.deps import Client

EXAMPLE = "s1.0-42.1-17"


async def catalog_session_header(
    client: Client,
    value: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="session consistency only: the X-Catalog-Session value of this "
            "client's last catalog answer (read-your-writes, monotonic reads); unreadable "
            "values count as none",
            examples=[EXAMPLE],
        ),
    ] = None,
) -> CatalogSession:
    """The one dependency that reads ``X-Catalog-Session``."""
    return client.catalog_session(value)


def answer_session(response: Response, session: CatalogSession) -> None:
    """Send the session's raised token back, when the request issued one."""
    token = session.header()
    if token is not None:
        response.headers[HEADER] = token


# How the answers document the header (OpenAPI), beside their body.
SESSION_ANSWER = {
    HEADER: {
        "description": "session consistency with replicas only: send it back with the next "
        "catalog request",
        "schema": {"type": "string", "example": EXAMPLE},
    }
}

Session = Annotated[CatalogSession, Depends(catalog_session_header)]
