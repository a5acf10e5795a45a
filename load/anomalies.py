"""The consistency anomalies a load run caused, read from the marketplace's own counters.

``GET /metrics`` at the gateway sums every process's counters over the cluster, so a reading
before the run and one after it give what the run did (``marketplace.cli.top_figures`` parses
and subtracts them): stale reads a catalog replica served, session reads a replica answered or
sent on to the shard, checkouts at the price the buyer saw, at a price the cart had not shown
(``stale_cart``) or refused as ``price_changed``, and the p99 of the replicas' replication lag
and of the seller dashboard's lag behind confirmed orders. Session violations are not counted
here: the gateway keeps the session promise by construction, and the history checker of
``marketplace simulate --check-consistency`` and the experiments is what looks for them.

A process's figures reach ``/metrics`` every ``metrics_report_interval_ms`` of Ray (10 s unless
``RAY_metrics_report_interval_ms`` says otherwise here, as it should say what the marketplace
runs with) and a gateway replica reuses its answer for 2 s, so the reading after the run waits
``SETTLE_S`` first; figures recorded later than that are left out.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from marketplace.cli.top_figures import Scrape

# Ray's default metrics_report_interval_ms, unless this process was given another (the tests
# export every second); and how long a gateway replica reuses its scrape (SCRAPE_TTL_S).
_EXPORT_MS = float(os.environ.get("RAY_metrics_report_interval_ms", "10000"))  # noqa: SIM112
_REPLICA_TTL_S = 2.0

SETTLE_S = _EXPORT_MS / 1000 + _REPLICA_TTL_S + 0.5
"""How long the reading after the run waits for the last figures to reach ``/metrics``."""

_P = "ray_marketplace_"
STALE_READS = _P + "stale_reads_total"
SESSION_READS = _P + "session_reads_total"
CHECKOUT_PRICES = _P + "checkout_prices_total"
REPLICATION_LAG = _P + "replication_lag_seconds_bucket"
DASHBOARD_LAG = _P + "dashboard_lag_seconds_bucket"

COUNTS = (
    "stale_reads_served",
    "session_reads_replica",
    "session_reads_owner",
    "checkouts_at_seen_price",
    "checkouts_stale_cart",
    "checkouts_price_changed",
)
LAGS = ("replication_lag_p99_s", "dashboard_lag_p99_s")


def read_metrics(host: str, *, wait_s: float = 0.0) -> Scrape | None:
    """The gateway's ``/metrics`` now (after ``wait_s``); None when it cannot be read (metrics
    off, an older gateway, no answer), which leaves the anomalies out of the report."""
    # Imported here, as in anomalies(): marketplace.cli's package imports load.cli, which
    # imports this module, so a top-level import would be circular under `python -m load.cli`
    # (hence also the metric names above, spelled with top_figures' prefix).
    from marketplace.cli.top_figures import read_scrape

    time.sleep(wait_s)
    return read_scrape(host)


def anomalies(before: Scrape, after: Scrape) -> dict[str, Any]:
    """What the counters grew by between the readings (``COUNTS``), and the lags' p99 in
    seconds over what was observed between them (``LAGS``; None when nothing was)."""
    from marketplace.cli.top_figures import growth, quantiles

    def grew(name: str, by: tuple[str, ...] = ()) -> dict[tuple[str, ...], float]:
        return growth(before, after, name, by)

    sessions = grew(SESSION_READS, ("outcome",))
    prices = grew(CHECKOUT_PRICES, ("outcome",))
    replication = quantiles(before, after, REPLICATION_LAG, (), 0.99).get(())
    dashboard = quantiles(before, after, DASHBOARD_LAG, (), 0.99).get(())
    return {
        "stale_reads_served": int(sum(grew(STALE_READS).values())),
        "session_reads_replica": int(sessions.get(("replica",), 0)),
        "session_reads_owner": int(sessions.get(("owner",), 0)),
        "checkouts_at_seen_price": int(prices.get(("current",), 0)),
        "checkouts_stale_cart": int(prices.get(("stale_cart",), 0)),
        "checkouts_price_changed": int(prices.get(("price_changed",), 0)),
        "replication_lag_p99_s": None if replication is None else round(replication, 4),
        "dashboard_lag_p99_s": None if dashboard is None else round(dashboard, 4),
    }


_LABELS = {
    "stale_reads_served": "stale reads a replica served",
    "session_reads_replica": "session reads a replica answered",
    "session_reads_owner": "session reads the shard answered",
    "checkouts_at_seen_price": "checkouts at the cart's price",
    "checkouts_stale_cart": "checkouts at a price the cart had not shown",
    "checkouts_price_changed": "checkouts refused: price_changed",
    "replication_lag_p99_s": "replication lag p99",
    "dashboard_lag_p99_s": "seller dashboard lag p99",
}


def anomaly_table(found: dict[str, Any]) -> Table:
    """The anomalies as a two-column table (lags in milliseconds, ``-`` when unobserved)."""
    table = Table(title="Consistency during the run (GET /metrics, after minus before)")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, label in _LABELS.items():
        value = found.get(key)
        lag = "-" if value is None else f"{1000 * value:.0f} ms"
        table.add_row(label, lag if key in LAGS else str(value))
    return table
