"""Open-loop arrival schedules: Poisson at a rate and piecewise rate curves, seeded."""

from __future__ import annotations

import random

import pytest

from marketplace.sim.arrivals import poisson, rate_curve

pytestmark = pytest.mark.unit


def test_poisson_arrivals_come_at_the_rate() -> None:
    times = poisson(random.Random(1), rate=200, duration=100)
    assert len(times) == pytest.approx(200 * 100, rel=0.03)
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < 100
    assert times == poisson(random.Random(1), rate=200, duration=100)
    assert times != poisson(random.Random(2), rate=200, duration=100)
    assert poisson(random.Random(1), rate=0, duration=100) == []


def test_a_rate_curve_follows_its_steps() -> None:
    steps = [(5.0, 10.0), (15.0, 100.0), (25.0, 0.0), (30.0, 50.0)]
    times = rate_curve(random.Random(3), steps, duration=40)
    assert times == sorted(times)

    def count(low: float, high: float) -> int:
        return sum(low <= t < high for t in times)

    assert count(0, 5) == 0
    assert count(5, 15) == pytest.approx(100, rel=0.3)
    assert count(15, 25) == pytest.approx(1000, rel=0.1)
    assert count(25, 30) == 0
    assert count(30, 40) == pytest.approx(500, rel=0.15)
    assert rate_curve(random.Random(3), steps, duration=20)[-1] < 20


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        poisson(random.Random(), rate=-1, duration=1)
    with pytest.raises(ValueError, match="increase"):
        rate_curve(random.Random(), [(1.0, 5.0), (1.0, 6.0)], duration=3)
