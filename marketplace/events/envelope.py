"""The CloudEvents-shaped envelope of DESIGN.md section 7, and its JSON wire form."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/json"


class Envelope(BaseModel):
    """One event as it leaves the outbox: {id, type, source, subject, sequence, time, data}.

    ``subject`` is the aggregate id and ``sequence`` its version after the change, so a
    consumer keeps the latest state per subject and drops duplicates by ``id``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=40)
    type: str = Field(min_length=1, max_length=64)
    source: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=40)
    sequence: int = Field(ge=0)
    # the outbox's column type (store.types.UtcDateTime) reads it back aware on every database
    time: AwareDatetime
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Envelope:
        """The envelope of an outbox row (extra columns such as ``position`` are ignored)."""
        return cls(**{name: row[name] for name in cls.model_fields})

    def to_json(self) -> bytes:
        """The message body: the envelope as compact JSON, time in RFC 3339 UTC."""
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "source": self.source,
                "subject": self.subject,
                "sequence": self.sequence,
                "time": self.time.astimezone(UTC),
                "data": self.data,
            },
            option=orjson.OPT_UTC_Z,
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> Envelope:
        """Parse a message body (raises ``ValueError`` on bad JSON or a bad envelope)."""
        return cls.model_validate(orjson.loads(body))
