"""Open-loop arrival schedules: the intended start of each operation, in seconds from the start.

The schedule is fixed before the run and does not depend on how fast the target answers, which
is what makes an open loop open. ``poisson`` draws exponential gaps at one rate; ``rate_curve``
follows a piecewise-constant rate, given as ``(t, rate)`` steps. Both are seeded by the
``random.Random`` passed in.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence


def poisson(rng: random.Random, rate: float, duration: float, start: float = 0.0) -> list[float]:
    """Poisson arrivals at ``rate`` per second in ``[start, start + duration)``, sorted."""
    if rate < 0:
        raise ValueError("rate must be >= 0")
    if duration < 0:
        raise ValueError("duration must be >= 0")
    times: list[float] = []
    if rate == 0:
        return times
    end = start + duration
    t = start + rng.expovariate(rate)
    while t < end:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def rate_curve(
    rng: random.Random, steps: Sequence[tuple[float, float]], duration: float
) -> list[float]:
    """Poisson arrivals whose rate follows ``steps`` over ``[0, duration)``.

    ``steps`` is ``[(t0, rate0), (t1, rate1), ...]`` with increasing ``t``: the rate is
    ``rate_i`` from ``t_i`` until ``t_{i+1}`` (the last until ``duration``) and 0 before ``t0``.
    Each step draws its own Poisson arrivals, which is exact because arrivals are memoryless.
    """
    if any(t1 <= t0 for (t0, _), (t1, _) in itertools.pairwise(steps)):
        raise ValueError("step times must increase")
    if any(t < 0 for t, _ in steps):
        raise ValueError("step times must be >= 0")
    times: list[float] = []
    for i, (t0, rate) in enumerate(steps):
        if t0 >= duration:
            break
        t1 = steps[i + 1][0] if i + 1 < len(steps) else duration
        times.extend(poisson(rng, rate, min(t1, duration) - t0, start=t0))
    return times
