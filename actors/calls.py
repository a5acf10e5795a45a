"""Awaiting actor calls: domain errors come back as themselves, infrastructure errors retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ray.exceptions import RayTaskError

from marketplace.domain.errors import DomainError

log = logging.getLogger(__name__)
R = TypeVar("R")


async def call(awaitable: Awaitable[R]) -> R:
    """Await an actor call, re-raising a domain error as the domain error it was."""
    try:
        return await awaitable
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, DomainError):
            raise cause from None
        raise


async def call_until_done(make_call: Callable[[], Awaitable[R]], what: str) -> R:
    """Call an idempotent operation until it succeeds.

    Used for steps a saga must not give up on (capture, commit, compensations): Ray already
    retries across actor restarts; this also rides out timeouts and transient failures.
    Domain errors are not retried: they mean the request itself is wrong.
    """
    delay = 0.05
    while True:
        try:
            return await call(make_call())
        except DomainError as exc:
            if exc.status < 500:
                raise
            log.warning("%s failed transiently (%s); retrying", what, exc)
        except Exception as exc:
            log.warning("%s failed (%r); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def unwrap(result: Any) -> Any:
    """Turn a gathered exception that wraps a domain error into the domain error."""
    if isinstance(result, RayTaskError) and isinstance(result.cause, DomainError):
        return result.cause
    return result
