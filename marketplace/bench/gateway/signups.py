"""A sign-up burst: many concurrent registrations, then as many logins, against the time the
same number of argon2id hashes takes on this machine one after another (issue #23's goal:
the burst's p95 within 2x of that pure hashing time)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from marketplace.bench.gateway.config import PASSWORD
from marketplace.bench.stats import percentile

SIGNUP_GOAL = 2.0


def hashing_seconds(count: int) -> float:
    """Seconds that ``count`` argon2id hashes (the marketplace's parameters) take here, one
    after another in this process: the floor a burst of ``count`` sign-ups is measured
    against."""
    from marketplace.passwords import hash_password

    began = time.perf_counter()
    for n in range(count):
        hash_password(f"{PASSWORD}-{n}")
    return time.perf_counter() - began


def _summary(latencies: list[float], errors: int, first_error: str | None) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "answered": len(ordered),
        "errors": errors,
        "first_error": first_error,
        "p50_s": percentile(ordered, 0.50) if ordered else None,
        "p95_s": percentile(ordered, 0.95) if ordered else None,
        "max_s": ordered[-1] if ordered else None,
    }


async def _burst(
    url: str, count: int, timeout_s: float
) -> tuple[dict[str, Any], dict[str, Any], float]:
    import httpx

    tag = uuid.uuid4().hex[:8]
    emails = [f"burst{n}-{tag}@bench.test" for n in range(count)]
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:

        async def timed(send: Any) -> tuple[float, str | None]:
            began = time.perf_counter()
            try:
                reply = await send()
            except httpx.HTTPError as exc:
                return time.perf_counter() - began, repr(exc)
            elapsed = time.perf_counter() - began
            if reply.status_code >= 400:
                return elapsed, f"{reply.status_code} {reply.text[:200]}"
            return elapsed, None

        def register(email: str) -> Any:
            return http.post(
                "/v1/users",
                json={"email": email, "password": PASSWORD, "name": "Burst", "role": "buyer"},
            )

        def login(email: str) -> Any:
            return http.post("/v1/auth/token", data={"username": email, "password": PASSWORD})

        began = time.perf_counter()
        registered = await asyncio.gather(*(timed(lambda e=e: register(e)) for e in emails))
        logged_in = await asyncio.gather(*(timed(lambda e=e: login(e)) for e in emails))
        wall = time.perf_counter() - began

    def summary(results: list[tuple[float, str | None]]) -> dict[str, Any]:
        failures = [error for _, error in results if error is not None]
        return _summary(
            [elapsed for elapsed, error in results if error is None],
            len(failures),
            failures[0] if failures else None,
        )

    return summary(registered), summary(logged_in), wall


def signup_burst(url: str, count: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """``count`` concurrent registrations, then ``count`` concurrent logins of those users;
    their latencies (p50, p95, max), errors, and the pure hashing time to compare with."""
    register, login, wall = asyncio.run(_burst(url, count, timeout_s))
    hashing = hashing_seconds(count)
    worst = max((s["p95_s"] or 0.0) for s in (register, login))
    return {
        "count": count,
        "register": register,
        "login": login,
        "wall_s": wall,
        "hashing_s": hashing,
        "p95_over_hashing": worst / hashing if hashing > 0 else None,
        "goal": SIGNUP_GOAL,
    }


def signup_line(label: str, burst: dict[str, Any]) -> str:
    """One printed line for a burst: both phases' p50/p95, the hashing floor, the goal."""
    ratio = burst["p95_over_hashing"]
    met = (
        ratio is not None
        and ratio <= burst["goal"]
        and not (burst["register"]["errors"] or burst["login"]["errors"])
    )

    def phase(name: str) -> str:
        figures = burst[name]
        if figures["p50_s"] is None:
            return f"{name}: no answer ({figures['errors']} errors)"
        errors = f", {figures['errors']} errors" if figures["errors"] else ""
        return f"{name} p50 {figures['p50_s']:.2f}s p95 {figures['p95_s']:.2f}s{errors}"

    shown = "n/a" if ratio is None else f"{ratio:.2f}x"
    return (
        f"goal {label}: {burst['count']} concurrent sign-ups ({phase('register')}; "
        f"{phase('login')}) p95 <= {burst['goal']:g}x the {burst['hashing_s']:.2f}s of "
        f"{burst['count']} hashes one after another: {shown} "
        f"{'[green]met[/]' if met else '[red]not met[/]'}"
    )
