"""marketplace.bench.checkout on the session's Ray: the figures it prints come from a real run."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from marketplace.bench.checkout import BenchConfig, ModeResult, bench
from marketplace.config import Durability

pytestmark = pytest.mark.integration


async def test_a_small_run_reports_calls_per_checkout_and_the_cost_of_a_ray_call(
    ray_address: Any,
) -> None:
    config = BenchConfig(orders=24, concurrency=8, products=6, buyers=4, warmup=4)
    figures = await bench(config, [Durability.SYNC], Console(file=io.StringIO()))
    result = ModeResult(**figures["modes"]["sync"])
    assert result.audit_ok and result.confirmed == result.orders == 24
    # Each checkout makes at least the client's call and its saga's steps, batched or not.
    assert result.calls_per_checkout >= 5
    assert 0 < result.ray_calls_per_checkout <= result.calls_per_checkout
    assert result.empty_call_ms > 0
    assert result.cpu_ms["OrderCoordinator"] > 0
