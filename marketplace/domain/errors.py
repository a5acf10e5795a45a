"""Domain errors. Each carries a stable ``code`` and the HTTP status a gateway should map it to."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal by the domain: the request changed nothing."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep details across Ray's pickling of exceptions.
        return (_rebuild, (type(self), self.message, self.details))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, the body of an RFC 9457 problem."""
        return {"code": self.code, "status": self.status, "detail": self.message, **self.details}


def _rebuild(cls: type[DomainError], message: str, details: dict[str, Any]) -> DomainError:
    return cls(message, **details)


class InvalidInput(DomainError):
    """The request is malformed or out of range."""

    status = 422
    code = "invalid_input"


class NotFound(DomainError):
    """No such thing (or not yours)."""

    status = 404
    code = "not_found"


class Forbidden(DomainError):
    """The caller's role may not do this."""

    status = 403
    code = "forbidden"


class Conflict(DomainError):
    """The current state does not allow it."""

    status = 409
    code = "conflict"


class InsufficientStock(Conflict):
    """A stock change would take availability below zero."""

    code = "insufficient_stock"


class PriceChanged(Conflict):
    """A checkout whose total is not the one the buyer was shown (prices moved)."""

    code = "price_changed"


class VersionMismatch(DomainError):
    """A conditional write named versions the object is no longer at (HTTP ``If-Match``)."""

    status = 412
    code = "version_mismatch"


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came with a different request body."""

    status = 422
    code = "idempotency_key_reused"


class TransientFailure(DomainError):
    """A dependency failed in a way that a retry may fix."""

    status = 503
    code = "transient_failure"
