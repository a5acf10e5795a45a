"""What one metrics record costs inside a Ray worker, where the marketplace records them.

In a Ray actor (started here on a local Ray, or ``RAY_ADDRESS``) it times ``--records`` of
each kind the marketplace makes, with the marketplace's own metric objects and tag shapes
(``actors.metrics``, ``serve_app.metrics``): a counter increment, a histogram observation, a
gauge set; a call of an actor method wrapped by ``actors.metrics.timed_calls`` against the
same method unwrapped; and what tracing adds to an actor call, off (the check) and on (the
caller's and the callee's spans). Prints microseconds per operation, the median of
``--rounds``.

    python -m marketplace.bench.metrics [--records 20000 --rounds 5]

Recording is about 2 us; a checkout makes a few dozen records across its processes
(``marketplace/bench/README.md`` has the figures and what they come to per checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import ray

from actors.metrics import ActorMetrics, timed_calls


class _Plain:
    metrics: ActorMetrics

    async def work(self) -> int:
        return 1


class _Timed(_Plain):
    async def work(self) -> int:
        return 1


timed_calls(_Timed)


@ray.remote(num_cpus=0.01)
class _Recorder:
    """Times the records in its own process, as an actor of the marketplace would make them."""

    def run(self, records: int) -> dict[str, float]:
        from actors import metrics as actor_metrics
        from serve_app import metrics as gateway_metrics

        marketplace = "bench" + uuid.uuid4().hex[:8]
        request_tags = {"marketplace": marketplace, "method": "POST", "route": "/v1/orders"}
        call_tags = {"marketplace": marketplace, "kind": "orders", "method": "place_order"}
        kind_tags = {"marketplace": marketplace, "kind": "orders"}
        ops: dict[str, Callable[[], None]] = {
            "counter inc": lambda: gateway_metrics.REQUESTS.inc(
                1, {**request_tags, "status": "201"}
            ),
            "histogram observe": lambda: actor_metrics.CALL_SECONDS.observe(0.004, call_tags),
            "gauge set": lambda: actor_metrics.CALLS_IN_FLIGHT.set(3, kind_tags),
        }
        out = {}
        for name, op in ops.items():
            began = time.perf_counter()
            for _ in range(records):
                op()
            out[name] = (time.perf_counter() - began) / records * 1e6
        out.update(asyncio.run(_calls(records, marketplace)))
        out.update(_tracing(records))
        return out


def _tracing(records: int) -> dict[str, float]:
    """What tracing costs per actor call: the check every call makes when nothing is traced,
    and a traced call's two spans (the caller's, the callee's), exported to a sink that drops
    them (the file write happens on the exporter's thread)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from marketplace import tracing

    class _Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    out = {}
    began = time.perf_counter()
    for _ in range(records):
        tracing.start_call("orders", "place_order")
    out["trace check, off"] = (time.perf_counter() - began) / records * 1e6
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    trace.set_tracer_provider(provider)
    with trace.get_tracer("bench").start_as_current_span("root"):
        began = time.perf_counter()
        for _ in range(records):
            started = tracing.start_call("orders", "place_order")
            assert started is not None
            with tracing.handling(started[1], "orders", "place_order"):
                pass
            tracing.end_call(started[0], None)
        out["traced call, 2 spans"] = (time.perf_counter() - began) / records * 1e6
    provider.shutdown()
    return out


async def _calls(records: int, marketplace: str) -> dict[str, float]:
    """An awaited method call, plain and wrapped by ``timed_calls`` (which records once)."""
    out = {}
    for name, cls in (("method call, plain", _Plain), ("method call, timed", _Timed)):
        target = cls()
        target.metrics = ActorMetrics(marketplace, "orders")
        began = time.perf_counter()
        for _ in range(records):
            await target.work()
        out[name] = (time.perf_counter() - began) / records * 1e6
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be at least 1")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        recorder = _Recorder.remote()  # type: ignore[attr-defined]
        rounds: list[dict[str, Any]] = [
            ray.get(recorder.run.remote(args.records)) for _ in range(args.rounds)
        ]
    finally:
        ray.shutdown()
    print(f"in a Ray worker, {args.records} of each, median of {args.rounds} rounds:")
    for name in rounds[0]:
        median = statistics.median(r[name] for r in rounds)
        print(f"  {name:<22} {median:6.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
