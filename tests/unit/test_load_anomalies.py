"""``marketplace load``'s consistency anomalies (``load/anomalies.py``): what the gateway's
counters grew by between a reading before the run and one after it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from load.anomalies import COUNTS, LAGS, anomalies, anomaly_table
from marketplace.cli.top_figures import Scrape

pytestmark = pytest.mark.unit


def exposition(
    stale: float, replica: float, owner: float, prices: dict[str, float], lag: list[float]
) -> str:
    """Ray's export as the gateway relays it (two processes' stale-read counters)."""
    bounds = ["0.1", "0.5", "+Inf"]
    buckets = "\n".join(
        f'ray_marketplace_replication_lag_seconds_bucket{{le="{b}",replica="replicas-0"}} {n}'
        for b, n in zip(bounds, lag, strict=True)
    )
    outcomes = "\n".join(
        f'ray_marketplace_checkout_prices_total{{outcome="{o}",marketplace="m"}} {n}'
        for o, n in prices.items()
    )
    return f"""\
# TYPE ray_marketplace_stale_reads_total counter
ray_marketplace_stale_reads_total{{marketplace="m",pid="1"}} {stale}
ray_marketplace_stale_reads_total{{marketplace="m",pid="2"}} 1
# TYPE ray_marketplace_session_reads_total counter
ray_marketplace_session_reads_total{{marketplace="m",outcome="replica"}} {replica}
ray_marketplace_session_reads_total{{marketplace="m",outcome="owner"}} {owner}
# TYPE ray_marketplace_checkout_prices_total counter
{outcomes}
# TYPE ray_marketplace_replication_lag_seconds histogram
{buckets}
ray_marketplace_replication_lag_seconds_count{{replica="replicas-0"}} {lag[-1]}
ray_marketplace_replication_lag_seconds_sum{{replica="replicas-0"}} 1.0
"""


def test_the_run_s_anomalies_are_the_counters_growth() -> None:
    before = Scrape.parse(
        exposition(2, 10, 5, {"current": 40}, [0, 0, 0]),
        0.0,
    )
    after = Scrape.parse(
        exposition(9, 30, 6, {"current": 70, "stale_cart": 3, "price_changed": 2}, [0, 100, 100]),
        10.0,
    )
    found = anomalies(before, after)
    assert set(found) == {*COUNTS, *LAGS}
    assert found["stale_reads_served"] == 7  # the other process's counter did not move
    assert (found["session_reads_replica"], found["session_reads_owner"]) == (20, 1)
    assert found["checkouts_at_seen_price"] == 30
    assert (found["checkouts_stale_cart"], found["checkouts_price_changed"]) == (3, 2)
    # Every lag observed between the readings fell in (0.1, 0.5]: p99 interpolates within it.
    assert found["replication_lag_p99_s"] == pytest.approx(0.1 + 0.4 * 0.99)
    assert found["dashboard_lag_p99_s"] is None  # nothing observed

    out = io.StringIO()
    Console(file=out, width=120).print(anomaly_table(found))
    text = out.getvalue()
    assert "checkouts refused: price_changed" in text and "496 ms" in text


def test_a_restarted_process_counts_from_zero() -> None:
    before = Scrape.parse(exposition(50, 0, 0, {}, [0, 0, 0]), 0.0)
    after = Scrape.parse(exposition(4, 0, 0, {}, [0, 0, 0]), 1.0)
    assert anomalies(before, after)["stale_reads_served"] == 4
