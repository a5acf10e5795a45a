"""Ray calls per checkout over HTTP, from the marketplace's own counters.

Every process counts the batches it sends (``marketplace_actor_batches_total``; ``via="ray"``
for those a Ray call carried, not a colocated cell's in-process ones), and the gateway counts
confirmed checkouts (``marketplace_orders_total``); ``GET /metrics`` sums both over every
process of the cluster. So a reading before and one after the checkout phase give the Ray calls
that carried a checkout, from the gateway's call to its coordinator to the last push, whichever
process made them. Calls that are not batched (the lessees' long polls, readiness) are not per
checkout and are not counted.

A process's figures reach its node's export every ``metrics_report_interval_ms`` (the
benchmark's marketplaces run with ``EXPORT_INTERVAL_MS``), and a replica answers ``/metrics``
from figures up to ``SCRAPE_TTL_S`` old: a reading waits for both first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from marketplace.bench.gateway.config import EXPORT_INTERVAL_MS
from marketplace.cli.top_figures import BATCHES, ORDERS, read_scrape


@dataclass(frozen=True)
class Reading:
    """The cluster's totals at one moment: Ray calls that carried batches, confirmed orders."""

    ray_calls: float
    confirmed: float


def read(url: str) -> Reading | None:
    """The totals once what was recorded so far has reached ``/metrics`` (None: unreadable,
    as with metrics off)."""
    # Imported here: the gateway imports Ray, and a marketplace subprocess of this benchmark
    # must set Ray's environment before that happens.
    from serve_app.routes.operations import SCRAPE_TTL_S

    time.sleep(EXPORT_INTERVAL_MS / 1000 + SCRAPE_TTL_S + 1.0)
    scrape = read_scrape(url)
    if scrape is None:
        return None
    ray_calls = sum(
        value
        for labels, value in scrape.series(BATCHES).items()
        if dict(labels).get("via") == "ray"
    )
    confirmed = sum(
        value
        for labels, value in scrape.series(ORDERS).items()
        if dict(labels).get("status") == "confirmed"
    )
    return Reading(ray_calls, confirmed)


def per_checkout(before: Reading | None, after: Reading | None) -> float | None:
    """Ray calls per confirmed checkout between two readings (None: none confirmed)."""
    if before is None or after is None or after.confirmed <= before.confirmed:
        return None
    return (after.ray_calls - before.ray_calls) / (after.confirmed - before.confirmed)
