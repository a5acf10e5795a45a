"""One marketplace's metrics, summed over every process of the Ray cluster.

Each Ray node's metrics agent exports what the processes on it recorded (``actors.metrics``,
``serve_app.metrics``), one series per process (the ``WorkerId`` label and its siblings).
Prometheus scrapes those node exports and sums in its queries; ``GET /metrics`` and
``marketplace top`` have no Prometheus, so this module scrapes every node and sums here: the
same totals from any gateway replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import ray
from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

# What Ray's exporter puts before the names the marketplace records.
PREFIX = "ray_marketplace_"
# Ray Serve's healthy replicas per deployment (its controller's gauge), passed through so that
# `marketplace top` shows replicas per deployment.
SERVE_REPLICAS = "ray_serve_deployment_replica_healthy"
# Families whose series are the highest value over processes rather than the sum: a restart
# count per actor, which a dead process may still show its older value of for a while.
MAX_OVER_PROCESSES = frozenset({"ray_marketplace_actor_restarts"})
# Labels that say which process (and which exporter) a series came from.
PROCESS_LABELS = frozenset(
    {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "JobId", "instance"}
)


def node_exports() -> list[str]:
    """The metrics URL of every live node of the Ray cluster this process belongs to."""
    urls = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        port = node.get("MetricsExportPort")
        if node.get("Alive") and port:
            urls.append(f"http://{node['NodeManagerAddress']}:{port}/metrics")
    return urls


async def fetch(urls: Iterable[str], timeout_s: float = 2.0) -> tuple[list[str], list[str]]:
    """The text of each export, and the URLs that did not answer (in that order)."""
    targets = list(urls)
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        replies = await asyncio.gather(
            *(client.get(url) for url in targets), return_exceptions=True
        )
    texts, failed = [], []
    for url, reply in zip(targets, replies, strict=True):
        if isinstance(reply, httpx.Response) and reply.status_code == 200:
            texts.append(reply.text)
        else:
            failed.append(url)
    return texts, failed


@dataclass
class _Family:
    name: str
    documentation: str
    kind: str
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)


def marketplace_lines(text: str) -> str:
    """The lines of an export about the marketplace's families and Serve's replica count (the
    rest is Ray's own, and most of the text: skipping it first keeps the parse short)."""
    return (
        "\n".join(line for line in text.splitlines() if PREFIX in line or SERVE_REPLICAS in line)
        + "\n"
    )


def summed(texts: Iterable[str], namespace: str) -> list[Metric]:
    """The ``namespace``'s marketplace families in ``texts``, each series summed over the
    processes that recorded it (a gauge too: one coordinator's counters, one actor's calls in
    flight add up to the marketplace's)."""
    families: dict[str, _Family] = {}
    for text in texts:
        for parsed in text_string_to_metric_families(marketplace_lines(text)):
            if not parsed.name.startswith(PREFIX) and parsed.name != SERVE_REPLICAS:
                continue
            family = families.setdefault(
                parsed.name, _Family(parsed.name, parsed.documentation, parsed.type)
            )
            highest = parsed.name in MAX_OVER_PROCESSES
            for sample in parsed.samples:
                if parsed.name == SERVE_REPLICAS:
                    # Serve's, not the marketplace's: one Serve per Ray, so every deployment
                    # on it, by (application, deployment) only.
                    kept = {k: sample.labels.get(k, "") for k in ("application", "deployment")}
                    key = (sample.name, tuple(sorted(kept.items())))
                    family.samples[key] = family.samples.get(key, 0.0) + sample.value
                    continue
                if sample.labels.get("marketplace") != namespace:
                    continue
                labels = tuple(
                    sorted(
                        (key, value)
                        for key, value in sample.labels.items()
                        if key not in PROCESS_LABELS and not key.startswith("otel_")
                    )
                )
                key = (sample.name, labels)
                if highest:
                    family.samples[key] = max(family.samples.get(key, 0.0), sample.value)
                else:
                    family.samples[key] = family.samples.get(key, 0.0) + sample.value
    metrics = []
    for family in sorted(families.values(), key=lambda f: f.name):
        if not family.samples:  # recorded only by other marketplaces
            continue
        metric = Metric(family.name, family.documentation, family.kind)
        for (name, labels), value in sorted(family.samples.items(), key=_sample_order):
            metric.add_sample(name, dict(labels), value)
        metrics.append(metric)
    return metrics


def _sample_order(
    item: tuple[tuple[str, tuple[tuple[str, str], ...]], float],
) -> tuple[object, ...]:
    (name, labels), _ = item
    # Histogram buckets in ascending ``le`` order, as Prometheus expects them.
    le = dict(labels).get("le")
    bound = float(le) if le is not None else 0.0
    return (name, tuple((k, v) for k, v in labels if k != "le"), bound)


def exposition(metrics: list[Metric]) -> bytes:
    """``metrics`` in the Prometheus text format."""
    return generate_latest(_Collected(metrics))  # type: ignore[arg-type]


@dataclass
class _Collected:
    metrics: list[Metric]

    def collect(self) -> list[Metric]:
        return self.metrics


async def cluster_metrics(namespace: str) -> bytes:
    """Every node's export, summed for ``namespace``, as Prometheus text.

    Raises ``ConnectionError`` when no node's export answered.
    """
    urls = await asyncio.to_thread(node_exports)
    texts, failed = await fetch(urls)
    if not texts:
        raise ConnectionError(f"no Ray node's metrics export answered ({', '.join(failed)})")
    if failed:  # the totals leave those nodes out: say so where an operator looks
        log.warning("metrics exports that did not answer (left out of the sums): %s", failed)
    # Off the event loop: an export is most of a megabyte of Ray's own series, and even
    # filtered first, reading them takes tens of milliseconds.
    return await asyncio.to_thread(lambda: exposition(summed(texts, namespace)))
