"""The catalog session token: how far a client has seen each catalog shard.

A client in ``session`` consistency sends back the token its last product read, search or
write answered (HTTP header ``X-Catalog-Session``). It maps a shard's index to the shard's
change sequence number (``marketplace.domain.change_log``) that the client's reads and writes
have reached; a replica may answer the client only once it has applied at least that much of
the shard, which gives read-your-writes and monotonic reads. The value is opaque to clients:
``s1.<shard>-<seq>.<shard>-<seq>...``. A token that does not parse, or that names a shard the
catalog does not have, counts as no token (the read is then as fresh as ``eventual``'s): it
never fails a request.
"""

from __future__ import annotations

HEADER = "X-Catalog-Session"
"""The HTTP header that carries the token, both ways."""

PREFIX = "s1"
# A header value is short; a token naming more shards than a catalog can have is not ours.
MAX_SHARDS = 256
MAX_CHARS = 8 * 1024

SessionToken = dict[int, int]


def encode(token: SessionToken) -> str:
    """The header value of ``token`` (shards in index order, so equal tokens read the same)."""
    return ".".join([PREFIX, *(f"{shard}-{seq}" for shard, seq in sorted(token.items()))])


def decode(value: str | None, shards: int) -> SessionToken:
    """The token a header value carries, for a catalog of ``shards`` shards; empty when there
    is none or it is not a token this catalog issued."""
    if not value or len(value) > MAX_CHARS:
        return {}
    head, _, rest = value.strip().partition(".")
    if head != PREFIX:
        return {}
    token: SessionToken = {}
    for part in rest.split(".") if rest else []:
        shard, dash, seq = part.partition("-")
        if not (dash and _number(shard) and _number(seq)) or len(token) >= MAX_SHARDS:
            return {}
        index = int(shard)
        if index >= shards:
            return {}
        token[index] = max(token.get(index, 0), int(seq))
    return token


def merge(*tokens: SessionToken) -> SessionToken:
    """The least token at least as far as each of ``tokens`` on every shard."""
    merged: SessionToken = {}
    for token in tokens:
        for shard, seq in token.items():
            if seq > merged.get(shard, -1):
                merged[shard] = seq
    return merged


def _number(text: str) -> bool:
    # ``isdigit`` alone takes other scripts' digits too, which ``int`` refuses.
    return text.isascii() and text.isdigit()


class CatalogSession:
    """One request's session token: what the client sent, raised by what the request read or
    wrote; ``header`` is what the answer sends back (None when the request touched no replica
    or shard in ``session`` consistency, so the answer carries no header)."""

    def __init__(self, token: SessionToken | None = None) -> None:
        self.token: SessionToken = dict(token or {})
        self.issued = False

    @classmethod
    def from_header(cls, value: str | None, shards: int) -> CatalogSession:
        """The session a request's header carries (an unreadable one counts as none)."""
        return cls(decode(value, shards))

    def needs(self, shard: int) -> int:
        """How far a replica of ``shard`` must have applied to answer this session."""
        return self.token.get(shard, 0)

    def saw(self, shard: int, seq: int) -> None:
        """The request read or wrote ``shard`` as of ``seq``."""
        if seq > self.token.get(shard, -1):
            self.token[shard] = seq
        self.issued = True

    def header(self) -> str | None:
        """The token the answer carries, if the request issued one."""
        return encode(self.token) if self.issued else None
