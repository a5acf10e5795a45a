"""What checking token versions costs a gateway replica, in one process (no Ray, no HTTP).

    python -m marketplace.bench.revocations [--users 10000 --revoked 0,100,1000
                                              --calls 200000 --rounds 3 --database URL]

Tokens carry their user's token version and a replica refuses older ones
(``serve_app/revocations.py``). It prints:

- per request: ``TokenService.verify`` of a token already verified (the memo, what nearly every
  request meets) without the version check, with it against an empty revocation map and
  against one holding ``max(--revoked)`` users; and the ``await Revocations.ready()`` every
  authenticated request makes. Microseconds per call, medians of ``--rounds``.
- what an exact check would have cost instead: ``UserStore.by_id`` (the read a per-request
  lookup of the version needs), milliseconds per call.
- per poll: ``UserStore.revocations_since`` over ``--users`` users of which ``--revoked`` had
  their tokens revoked within the window, milliseconds per poll; a replica polls once per
  ``MARKETPLACE_REVOCATION_POLL_S`` (1 s by default) whatever its request rate.

A temporary SQLite file by default; ``--database`` takes any SQLAlchemy URL (an empty
database: the schema is migrated and the users are inserted there).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import update

from marketplace.domain.ids import new_id
from marketplace.domain.users import Role, User
from marketplace.store import migrate
from marketplace.store.engine import create_engine
from marketplace.store.tables import users
from marketplace.store.users import UserStore
from serve_app.revocations import Revocations
from serve_app.tokens import TokenService

SECRET = "bench-secret-" + "x" * 40


def _per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


async def _per_await_us(call: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls * 1e6


async def _nothing(since: datetime) -> list[tuple[str, int, datetime]]:
    return []


def _revocations(revoked: int) -> Revocations:
    revocations = Revocations(_nothing, token_ttl_s=900, poll_s=1)
    for i in range(revoked):
        revocations.note(f"usr_{i:032x}", 1)
    return revocations


async def per_request(calls: int, revoked: int) -> dict[str, float]:
    """Microseconds per verify of a known token, and per warm ``ready()``."""
    user = User(
        id=new_id("usr"), email="b@example.com", name="B", role=Role.BUYER, password_hash="x"
    )
    services = {
        "verify, no version check": TokenService(SECRET, 900),
        "verify, empty revocation map": TokenService(SECRET, 900, _revocations(0)),
        f"verify, {revoked} revoked users": TokenService(SECRET, 900, _revocations(revoked)),
    }
    figures = {}
    for name, service in services.items():
        token = service.issue(user)
        service.verify(token)  # now in the memo
        figures[name] = _per_call_us(partial(service.verify, token), calls)
    warm = _revocations(0)
    await warm.ready()
    try:
        figures["await ready() (warm)"] = await _per_await_us(warm.ready, calls)
    finally:
        await warm.close()
    return figures


async def store_figures(url: str, user_count: int, revoked_counts: list[int]) -> dict[str, float]:
    """Milliseconds per ``by_id`` and per poll at each revoked count."""
    await migrate.upgrade_async(url)
    engine = create_engine(url)
    store = UserStore(engine)
    now = datetime.now(UTC)
    ids = [new_id("usr") for _ in range(user_count)]
    async with engine.begin() as conn:
        for first in range(0, user_count, 1000):
            await conn.execute(
                users.insert(),
                [
                    {
                        "id": user_id,
                        "email": f"{user_id}@bench.test",
                        "name": "Bench",
                        "role": "buyer",
                        "password_hash": "x",
                        "created_at": now,
                    }
                    for user_id in ids[first : first + 1000]
                ],
            )
    figures: dict[str, float] = {}
    try:
        reads = min(2000, user_count)
        start = time.perf_counter()
        for user_id in ids[:reads]:
            await store.by_id(user_id)
        figures["by_id (an exact check's read per request)"] = (
            (time.perf_counter() - start) / reads * 1e3
        )
        marked = 0
        for count in sorted(revoked_counts):
            if count > marked:
                async with engine.begin() as conn:
                    await conn.execute(
                        update(users)
                        .where(users.c.id.in_(ids[marked:count]))
                        .values(token_version=1, tokens_revoked_at=now)
                    )
                marked = count
            polls = 50
            since = now - timedelta(seconds=60)
            start = time.perf_counter()
            for _ in range(polls):
                found = await store.revocations_since(since)
            assert len(found) == count
            figures[f"poll, {count} revoked in the window"] = (
                (time.perf_counter() - start) / polls * 1e3
            )
    finally:
        await engine.dispose()
    return figures


async def main_async(args: argparse.Namespace) -> None:
    revoked = [int(x) for x in args.revoked.split(",")]
    rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):
        rounds.append(await per_request(args.calls, max(revoked)))
    print(f"per request (median of {args.rounds} rounds, {args.calls} calls each), microseconds:")
    for name in rounds[0]:
        print(f"  {name:<36} {statistics.median(r[name] for r in rounds):8.2f} us")
    if args.database:
        url = args.database
        figures = await store_figures(url, args.users, revoked)
    else:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            figures = await store_figures(url, args.users, revoked)
    print(f"store ({url.split(':', 1)[0]}, {args.users} users), milliseconds:")
    for name, ms in figures.items():
        print(f"  {name:<42} {ms:8.3f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.bench.revocations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--revoked", default="0,100,1000", help="revoked users, comma-separated")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", help="an empty database's URL (default: temporary SQLite)")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
