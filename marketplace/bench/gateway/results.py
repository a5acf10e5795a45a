"""The figures of one endpoint, and a run's rounds merged into medians."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from marketplace.bench.stats import median_of_known, ratio


@dataclass
class EndpointResult:
    """The figures of one endpoint under one ingress."""

    endpoint: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu: float | None
    machine_cpu: float | None
    ratio_to_health: float | None = None
    first_error: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    round_rps: list[float] = field(default_factory=list)
    # CPU milliseconds per answered request, by process role on this host (marketplace.bench.cpu)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    # Checkout only: Ray calls per confirmed checkout, over every process (gateway.ray_calls)
    ray_calls_per_checkout: float | None = None


def merge_rounds(rounds: list[EndpointResult], health: list[float]) -> EndpointResult:
    """One endpoint's rounds as one result: medians of the per-round figures, sums of counts.

    The ratio to health is the median of each round's ratio to the health of that round, so
    a noisy neighbour that slows one round slows both sides of its ratio.
    """
    statuses: dict[str, int] = {}
    for result in rounds:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    ratios = [ratio(r.rps, h) for r, h in zip(rounds, health, strict=True)]
    roles = dict.fromkeys(role for r in rounds for role in r.cpu_ms)
    return EndpointResult(
        endpoint=rounds[0].endpoint,
        requests=sum(r.requests for r in rounds),
        errors=sum(r.errors for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        rps=statistics.median(r.rps for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        mean_ms=statistics.median(r.mean_ms for r in rounds),
        client_cpu=median_of_known([r.client_cpu for r in rounds]),
        machine_cpu=median_of_known([r.machine_cpu for r in rounds]),
        ratio_to_health=median_of_known(ratios),
        first_error=next((r.first_error for r in rounds if r.first_error), None),
        statuses=statuses,
        round_rps=[r.rps for r in rounds],
        cpu_ms={role: statistics.median(r.cpu_ms.get(role, 0.0) for r in rounds) for role in roles},
        ray_calls_per_checkout=median_of_known([r.ray_calls_per_checkout for r in rounds]),
    )
