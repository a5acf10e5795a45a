"""Which database failures pass by themselves.

A PostgreSQL server that restarts cuts every connection and refuses new ones for a few seconds;
a SQLite writer can find the file busy past its timeout. Such a failure says nothing about the
request, so an actor answers it as ``TransientFailure`` (503: retry with the same key) and the
order coordinator retries its own writes through it. Anything else (a refused row, a bad
statement) is not retried: it would fail the same way again.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator

from sqlalchemy import exc as sa

from marketplace.domain.errors import TransientFailure

# SQLite's primary result codes for a database held by another connection.
_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


@contextlib.contextmanager
def unavailable_on_outage(what: str = "the database") -> Iterator[None]:
    """Raise a transient failure met inside the block as ``TransientFailure`` (503), as the
    writer raises it; anything else as it is."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise database_unavailable(exc, what) from exc
        raise


def database_unavailable(cause: BaseException, what: str = "the database") -> TransientFailure:
    """The 503 that a transient ``cause`` is answered with."""
    failure = TransientFailure(f"{what} is unavailable; retry shortly")
    failure.__cause__ = cause
    return failure


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database failure that a later retry may not meet."""
    if isinstance(error, sa.IntegrityError | sa.ProgrammingError | sa.DataError):
        return False
    if isinstance(error, sa.DBAPIError):
        if error.connection_invalidated:
            return True
        orig = error.orig
        if isinstance(orig, sqlite3.Error):
            return _sqlite_busy(orig)
        if isinstance(error, sa.OperationalError | sa.InterfaceError):
            return True
        cause = getattr(orig, "__cause__", None)
        return cause is not None and is_transient(cause)
    if isinstance(error, sa.DisconnectionError | sa.TimeoutError):
        return True
    if isinstance(error, sqlite3.Error):
        return _sqlite_busy(error)
    if _asyncpg_transient(error):
        return True
    return isinstance(error, ConnectionError | TimeoutError)


def _asyncpg_transient(error: BaseException) -> bool:
    # asyncpg's own errors for a connection that failed, was cut or cannot be made yet (the
    # server is shutting down or starting up); SQLAlchemy lets some through unwrapped on
    # connect. Without asyncpg imported (SQLite) there are none, so it is not imported here.
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(
        error,
        asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InterfaceError,
    )


def _sqlite_busy(error: sqlite3.Error) -> bool:
    # "database is locked" and the like; "no such table" is an OperationalError too.
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF in _SQLITE_BUSY)
    )
