"""The marketplace under test, in its own process (the ingress flag must precede Ray), and the
parent's handle on that process."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from marketplace.bench.gateway.config import (
    EXPORT_INTERVAL_MS,
    MODULE,
    NOUNS,
    PASSWORD,
    READY,
    ROOT,
    SERVER_STOP_TIMEOUT_S,
    STOCK,
    BenchConfig,
    child_env,
    free_port,
)


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


async def serve_marketplace(
    ingress: str, workdir: Path, config: BenchConfig, topology: str = "distributed"
) -> None:
    """Start Ray, the actors (in ``topology``) and the gateway; seed; announce; wait for
    stdin; stop."""
    from actors.runtime import Runtime
    from marketplace.config import Settings, Topology
    from serve_app.serving import choose_ingress, start_gateway

    began = time.monotonic()
    settings = Settings(
        database_url=f"sqlite:///{workdir / f'bench-{ingress}-{topology}.db'}",
        namespace=f"bench-gw-{ingress}-{uuid.uuid4().hex[:6]}",
        topology=Topology(topology),
        http_port=free_port(),
        actor_num_cpus=0.01,
        fast_ingress=ingress == "haproxy",
        access_log=False,
        gateway_min_replicas=config.replicas,
        gateway_max_replicas=config.replicas,
        auth_min_replicas=1,
        auth_max_replicas=1,
        login_rate_per_minute=100_000,
        login_rate_per_address_per_minute=100_000,
        registration_rate_per_address_per_minute=100_000,
        registration_rate_per_minute=100_000,
        checkout_rate_per_minute=10_000_000,
    ).with_generated_secrets()
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
            "topology": topology,
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


def serve_main(
    ingress: str, workdir: Path, config: BenchConfig, topology: str = "distributed"
) -> int:
    """Entry of a marketplace process: the ingress flag is set here, before Ray is imported."""
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1" if ingress == "haproxy" else "0"
    os.environ.pop("RAY_ADDRESS", None)  # a local Ray of its own: a joined one keeps its flag
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_metrics_report_interval_ms", str(EXPORT_INTERVAL_MS))
    asyncio.run(serve_marketplace(ingress, workdir, config, topology))
    return 0


class Marketplace:
    """The parent's view of one marketplace subprocess."""

    def __init__(
        self,
        ingress: str,
        workdir: Path,
        config: BenchConfig,
        args: list[str],
        label: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env`` adds to the subprocess's environment (a setting, say)."""
        self.ingress = label or ingress
        self.log_path = workdir / f"server-{self.ingress}.log"
        self._log: IO[str] = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--_serve", ingress, "--_workdir", str(workdir), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env={**{k: v for k, v in child_env().items() if k != "RAY_ADDRESS"}, **(env or {})},
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
