"""The HTTP driver: load-generator processes (geventhttpclient, one greenlet per connection,
no Ray) that drive one endpoint, and the parent's merge of their figures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from marketplace.bench.cpu import CpuWindow, busy_share, machine_cpu_times, per_operation_ms
from marketplace.bench.gateway.config import ADDRESS, MODULE, NOUNS, ROOT, BenchConfig, child_env
from marketplace.bench.gateway.results import EndpointResult
from marketplace.bench.stats import percentile, rate

Request = tuple[str, str, bytes, dict[str, str]]


def request_maker(spec: dict[str, Any]) -> Callable[[int], Request]:
    """The ``index``-th request of the spec's endpoint."""
    endpoint = spec["endpoint"]
    seed = spec.get("seed") or {}
    products: list[str] = seed.get("product_ids", [])
    auths = [{"Authorization": f"Bearer {token}"} for token in seed.get("buyer_tokens", [])]
    json_type = {"Content-Type": "application/json"}
    if endpoint in ("health", "static"):
        fixed: Request = ("GET", "/v1/health", b"", {})
        return lambda index: fixed
    if endpoint == "product":
        reads: list[Request] = [("GET", f"/v1/products/{p}", b"", {}) for p in products]
        return lambda index: reads[index % len(reads)]
    if endpoint == "search":
        searches: list[Request] = [
            ("GET", f"/v1/products?q={noun}&limit=10", b"", {}) for noun in NOUNS
        ]
        return lambda index: searches[index % len(searches)]
    if endpoint == "cart":
        puts = [
            (
                "PUT",
                f"/v1/cart/items/{product}",
                json.dumps({"quantity": 1 + (p + b) % 3}).encode(),
                {**auth, **json_type},
            )
            for p, product in enumerate(products)
            for b, auth in enumerate(auths)
        ]
        return lambda index: puts[index % len(puts)]
    if endpoint == "checkout":
        bodies = [
            json.dumps(
                {
                    "items": [{"product_id": p, "quantity": 1}],
                    "payment": {"card_token": "tok_visa"},
                    "shipping_address": ADDRESS,
                }
            ).encode()
            for p in products
        ]
        prefix = f"bench-{uuid.uuid4().hex[:12]}-"

        def checkout(index: int) -> Request:
            headers = {
                **auths[index % len(auths)],
                **json_type,
                "Idempotency-Key": f"{prefix}{index}",
            }
            return "POST", "/v1/orders", bodies[(index // len(auths)) % len(bodies)], headers

        return checkout
    raise ValueError(f"unknown endpoint {endpoint!r}")


def checkout_confirmed(body: bytes) -> bool:
    """Whether a checkout answer is a confirmed order."""
    try:
        return bool(json.loads(body).get("status") == "confirmed")
    except ValueError:
        return False


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive one endpoint from this process (in a load-generator process; imports gevent).

    ``spec``: url, endpoint, seed, concurrency, start_at (epoch seconds), warmup, duration.
    """
    import gevent  # type: ignore[import-untyped]
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    url = URL(spec["url"])
    concurrency = int(spec["concurrency"])
    make = request_maker(spec)
    check_body = spec["endpoint"] == "checkout"
    client = HTTPClient(
        url.host,
        url.port,
        concurrency=concurrency,
        connection_timeout=30,
        network_timeout=120,
    )
    gevent.sleep(max(0.0, float(spec["start_at"]) - time.time()))
    begin = time.perf_counter()
    measure_from = begin + float(spec["warmup"])
    end = measure_from + float(spec["duration"])
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    first_error: str | None = None
    marks: dict[str, Any] = {}

    def mark(name: str) -> None:
        marks[name] = (time.process_time(), machine_cpu_times())

    def worker(start: int) -> None:
        nonlocal errors, first_error
        index = start
        while time.perf_counter() < end:
            method, path, body, headers = make(index)
            index += concurrency
            began = time.perf_counter()
            problem: str | None = None
            try:
                response = client.request(method, path, body=body, headers=headers)
                payload = response.read()
                status = str(response.status_code)
                if not 200 <= response.status_code < 300:
                    problem = f"{method} {path} -> {status} {payload[:300]!r}"
                elif check_body and not checkout_confirmed(payload):
                    status = "not confirmed"
                    problem = f"{method} {path} -> {payload[:300]!r}"
            except Exception as exc:
                status = type(exc).__name__
                problem = f"{method} {path} -> {exc!r}"
            finished = time.perf_counter()
            if began < measure_from or finished > end:
                continue
            statuses[status] = statuses.get(status, 0) + 1
            if problem is None:
                latencies.append(finished - began)
            else:
                errors += 1
                first_error = first_error or problem

    timers = [
        gevent.spawn_later(max(0.0, measure_from - time.perf_counter()), mark, "from"),
        gevent.spawn_later(max(0.0, end - time.perf_counter()), mark, "to"),
    ]
    greenlets = [gevent.spawn(worker, n) for n in range(concurrency)]
    gevent.joinall(timers)
    # Requests still in flight at the end are not counted; give them a moment to finish.
    gevent.joinall(greenlets, timeout=30)
    gevent.killall(greenlets, block=False)
    client.close()
    seconds = end - measure_from
    cpu_from, machine_from = marks.get("from", (None, None))
    cpu_to, machine_to = marks.get("to", (None, None))
    client_cpu = (cpu_to - cpu_from) / seconds if cpu_from is not None and cpu_to else None
    return {
        "latencies": latencies,
        "errors": errors,
        "seconds": seconds,
        "client_cpu": client_cpu,
        "machine_cpu": busy_share(machine_from, machine_to),
        "statuses": statuses,
        "first_error": first_error,
    }


def load_main() -> int:
    """Entry of a load-generator process: spec JSON on stdin, figures JSON on stdout."""
    spec = json.loads(sys.stdin.read())
    print(json.dumps(run_load(spec)))
    return 0


def drive(
    url: str,
    endpoint: str,
    seed: dict[str, Any] | None,
    config: BenchConfig,
    duration: float,
) -> EndpointResult:
    """Run ``endpoint`` from ``config.client_procs`` load processes and merge their figures."""
    procs = max(1, min(config.client_procs, config.concurrency))
    shares = [config.concurrency // procs + (n < config.concurrency % procs) for n in range(procs)]
    start_at = time.time() + 1.5  # every process is up and connected-ready by then
    window = CpuWindow(start_at + config.warmup, start_at + config.warmup + duration)
    children = []
    for share in shares:
        spec = {
            "url": url,
            "endpoint": endpoint,
            "seed": seed,
            "concurrency": share,
            "start_at": start_at,
            "warmup": config.warmup,
            "duration": duration,
        }
        child = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--_load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=child_env(),
            text=True,
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        children.append(child)
    parts = []
    for child in children:
        assert child.stdout is not None
        output = child.stdout.read()
        if child.wait() != 0 or not output.strip():
            raise RuntimeError(
                f"the load generator for {endpoint} failed (exit {child.returncode})"
            )
        parts.append(json.loads(output.strip().splitlines()[-1]))
    latencies = sorted(x for part in parts for x in part["latencies"])
    spent = window.result()
    seconds = max(part["seconds"] for part in parts)
    cpus = [part["client_cpu"] for part in parts]
    machine = [part["machine_cpu"] for part in parts if part["machine_cpu"] is not None]
    statuses: dict[str, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return EndpointResult(
        endpoint=endpoint,
        requests=len(latencies),
        errors=sum(part["errors"] for part in parts),
        seconds=seconds,
        rps=rate(len(latencies), seconds),
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        mean_ms=sum(latencies) / len(latencies) * 1000 if latencies else float("nan"),
        client_cpu=sum(cpus) if all(c is not None for c in cpus) else None,
        machine_cpu=sum(machine) / len(machine) if machine else None,
        first_error=next((part["first_error"] for part in parts if part["first_error"]), None),
        statuses=statuses,
        cpu_ms=per_operation_ms({}, spent, len(latencies)) if spent else {},
    )
