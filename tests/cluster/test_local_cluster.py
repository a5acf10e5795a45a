"""The local rehearsal (cluster/local/): a head and two worker Ray nodes on this
machine, the dev overlay's serveConfigV2 deployed through the dashboard, the smoke load scenario,
then the upgrade drill mid-load (no request fails), then a worker node killed mid-load (by the
fault plans' ``kill_node``, as ``marketplace simulate --faults`` would): its actors come back on
the surviving worker, the marketplace keeps answering and the invariant
audit stays clean. The tests run in this order, on one cluster."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from actors.directory import Directory
from cluster.local.lifecycle import down, up
from cluster.local.placement import actor_names, settled_placement
from cluster.local.serve_deploy import wait_ready
from cluster.local.smoke import smoke
from cluster.local.state import LocalCluster, record_pointer
from cluster.local.upgrade import replica_ids, serve_status, upgrade
from cluster.manifests import render, serve_config_v2
from marketplace.sim.faults.injectors import FaultContext, check_targets, injector_for
from marketplace.sim.faults.plan import parse_plan, schedule
from serve_app.deploy_config import settings_from_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

BUYERS = 3
PASSWORD = "password123"
STOCK = 5000


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    cluster = up("dev", workers=2, worker_cpus=2)
    try:
        yield cluster
    finally:
        down(cluster)


def test_the_overlay_deploys_unchanged_and_passes_the_smoke_scenario(
    local_cluster: LocalCluster,
) -> None:
    wanted = serve_config_v2(render("dev"))
    status = httpx.get(f"{local_cluster.dashboard}/api/serve/applications/", timeout=30).json()
    deployed = status["applications"]["marketplace"]["deployed_app_config"]
    assert deployed == wanted["applications"][0]
    assert status["proxy_location"] == wanted["proxy_location"]
    placement = settled_placement(local_cluster)
    assert sorted(n["node"] for n in placement["nodes"] if n["state"] == "ALIVE") == [
        "head",
        "worker1",
        "worker2",
    ]
    # Nothing of the marketplace runs on the head (num-cpus 0, as in the manifests).
    alive = [a for a in placement["actors"] if a["state"] == "ALIVE"]
    assert {a["name"] for a in alive} == actor_names(local_cluster)
    assert all(a["node"] != "head" for a in alive)
    assert all(r["node"] != "head" for r in placement["replicas"])
    # 5 s of the scenario: its users all run, and its SLOs and the audit are checked (10 s
    # took 15.4 s of this test here).
    assert smoke(local_cluster, duration_s=5) == 0


@dataclass
class Load:
    """Checkouts and reads against the marketplace, each outcome with its time."""

    url: str
    product_id: str
    buyers: list[dict[str, str]]
    outcomes: list[tuple[float, str, bool]] = field(default_factory=list)  # (t, what, ok)
    errors: dict[str, int] = field(default_factory=dict)  # what failed, how often
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> final order
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def failures(self) -> list[tuple[float, str, bool]]:
        return [o for o in self.outcomes if not o[2]]

    async def checkout(self, http: httpx.AsyncClient, buyer: dict[str, str]) -> None:
        """One checkout; after a failure the same Idempotency-Key again, as a client should."""
        key = uuid.uuid4().hex
        body = {
            "items": [{"product_id": self.product_id, "quantity": 1}],
            "payment": {"card_token": "tok_visa"},
            "shipping_address": {
                "name": "Bo",
                "street": "1 Main St",
                "city": "Springfield",
                "zip": "12345",
                "country": "US",
            },
        }
        headers = {"Authorization": f"Bearer {buyer['token']}", "Idempotency-Key": key}
        deadline = time.monotonic() + 240
        pause = 0.25
        while time.monotonic() < deadline:
            try:
                reply = await http.post("/v1/orders", json=body, headers=headers)
                ok = reply.status_code == 201
                what = str(reply.status_code)
            except httpx.HTTPError as exc:
                ok, what = False, type(exc).__name__
            self.outcomes.append((time.monotonic(), "checkout", ok))
            if ok:
                self.orders[key] = reply.json()
                return
            self.errors[what] = self.errors.get(what, 0) + 1
            pause = min(pause * 2, 2.0)  # back off while the marketplace recovers
            await asyncio.sleep(pause)
        raise AssertionError(f"checkout {key} never succeeded")

    async def buyer_loop(self, buyer: dict[str, str]) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as http:
            while not self.stop.is_set():
                await self.checkout(http, buyer)
                await asyncio.sleep(0.2)

    async def reader_loop(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as http:
            while not self.stop.is_set():
                try:
                    reply = await http.get(f"/v1/products/{self.product_id}")
                    ok, what = reply.status_code == 200, f"read {reply.status_code}"
                except httpx.HTTPError as exc:
                    ok, what = False, f"read {type(exc).__name__}"
                self.outcomes.append((time.monotonic(), "read", ok))
                if not ok:
                    self.errors[what] = self.errors.get(what, 0) + 1
                await asyncio.sleep(0.5 if ok else 2.0)


async def _signup(http: httpx.AsyncClient, role: str) -> dict[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    created = await http.post(
        "/v1/users", json={"email": email, "password": PASSWORD, "name": role, "role": role}
    )
    assert created.status_code == 201, created.text
    token = await http.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"id": created.json()["id"], "token": token.json()["access_token"]}


async def _settle(http: httpx.AsyncClient, load: Load) -> None:
    """Wait until every order is terminal (a coordinator that restarted resumes its sagas)."""
    buyer_tokens = {b["id"]: b["token"] for b in load.buyers}
    deadline = time.monotonic() + 120
    for key, order in list(load.orders.items()):
        while order["status"] == "pending" and time.monotonic() < deadline:
            await asyncio.sleep(1)
            headers = {"Authorization": f"Bearer {buyer_tokens[order['buyer_id']]}"}
            reply = await http.get(f"/v1/orders/{order['id']}", headers=headers)
            if reply.status_code == 200:
                order = reply.json()
        load.orders[key] = order


async def _start_load(
    http: httpx.AsyncClient, cluster: LocalCluster
) -> tuple[Load, list[asyncio.Task[None]]]:
    """A seller's product, ``BUYERS`` buyers checking it out and a reader reading it."""
    seller = await _signup(http, "seller")
    product = await http.post(
        "/v1/products",
        json={"name": "Drill", "category": "tools", "price_cents": 1500, "initial_stock": STOCK},
        headers={"Authorization": f"Bearer {seller['token']}"},
    )
    assert product.status_code == 201, product.text
    buyers = [await _signup(http, "buyer") for _ in range(BUYERS)]
    load = Load(cluster.url, product.json()["id"], buyers)
    tasks = [asyncio.create_task(load.buyer_loop(b)) for b in buyers]
    tasks.append(asyncio.create_task(load.reader_loop()))
    return load, tasks


async def _check_books(http: httpx.AsyncClient, cluster: LocalCluster, load: Load) -> None:
    """Every checkout ended in exactly one confirmed order (retries included), the invariant
    audit is clean and the product's stock adds up."""
    statuses = {order["status"] for order in load.orders.values()}
    assert statuses == {"confirmed"}, statuses
    assert len({order["id"] for order in load.orders.values()}) == len(load.orders)

    admin = await http.post(
        "/v1/auth/token",
        data={"username": cluster.admin_email, "password": cluster.admin_password},
    )
    assert admin.status_code == 200, admin.text
    as_admin = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    audit = await http.get("/v1/admin/audit", headers=as_admin)
    assert audit.status_code == 200, audit.text
    assert audit.json()["ok"], audit.json()
    # Sold units are the seller's and admins' to see.
    stock = (await http.get(f"/v1/products/{load.product_id}/stock", headers=as_admin)).json()
    assert stock["sold"] == len(load.orders) and stock["available"] == STOCK - len(load.orders)


async def _checkouts_since(load: Load, since: float, count: int, timeout_s: float) -> None:
    """Keep the load on until ``count`` checkouts that began after ``since`` went through."""
    while sum(1 for t, w, ok in load.outcomes if ok and w == "checkout" and t > since) < count:
        assert time.monotonic() - since < timeout_s, f"no {count} checkouts since"
        await asyncio.sleep(0.5)


async def test_an_upgrade_under_load(local_cluster: LocalCluster) -> None:
    """The upgrade drill mid-load: replica bounds raised in place, then a setting and a new
    release rolled (Serve replaces every replica): no request fails, every order is confirmed,
    the audit is clean and the new config runs. Before the worker kill, which it leaves with
    two replicas of each deployment (the kill test holds either way)."""
    cluster = local_cluster
    big = {"padding": "x" * 100_000}  # over the default body limit, under the changed one
    async with httpx.AsyncClient(base_url=cluster.url, timeout=60) as http:
        assert (await http.post("/v1/users", json=big)).status_code == 413
        load, tasks = await _start_load(http, cluster)
        await asyncio.sleep(3)
        assert len(load.orders) >= 2 and not load.failures(), load.outcomes[-10:]
        began = time.monotonic()
        results = await asyncio.to_thread(upgrade, cluster, release="upgrade-test")
        upgraded_at = time.monotonic()
        await asyncio.sleep(1)
        await _checkouts_since(load, upgraded_at, 6, timeout_s=60)
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        await _settle(http, load)

        during = [o for o in load.outcomes if began <= o[0] <= upgraded_at]
        print(
            "\n"
            + "\n".join(r.summary() for r in results)
            + f"\n{len(load.outcomes)} requests ({len(during)} during the upgrade), "
            f"{len(load.failures())} failed {load.errors or ''}"
        )
        assert [r.step.name for r in results] == ["in place", "roll"]
        assert not load.failures(), load.errors

        # The new config runs: the deployed one, two replicas each, none from before the roll.
        roll = results[-1]
        app = serve_status(cluster)["applications"]["marketplace"]
        assert app["status"] == "RUNNING"
        assert app["deployed_app_config"] == roll.step.app
        assert replica_ids(app) == roll.after
        for name in ("Gateway", "Auth"):
            assert len(roll.after[name]) == 2 and not roll.after[name] & roll.before[name]
        # The changed setting reached the new replicas: the body limit is the new one.
        assert (await http.post("/v1/users", json=big)).status_code == 422
        await _check_books(http, cluster, load)


async def test_a_worker_node_killed_mid_load(
    local_cluster: LocalCluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = local_cluster
    before = await asyncio.to_thread(settled_placement, cluster)
    marketplace_actors = actor_names(cluster)
    # The victim: the worker that holds most of the marketplace's actors and replicas.
    counts = {w.name: 0 for w in cluster.workers()}
    for item in [*before["actors"], *before["replicas"]]:
        if item["node"] in counts:
            counts[item["node"]] += 1
    victim = max(counts, key=lambda name: counts[name])
    survivor = next(name for name in counts if name != victim)
    moved = {a["name"] for a in before["actors"] if a["node"] == victim}
    victim_id = next(n["node_id"] for n in before["nodes"] if n["node"] == victim)

    # The kill is a fault plan's, found and checked as `marketplace simulate --faults` would:
    # through this directory's record of the cluster, with the driver's settings joining it.
    monkeypatch.chdir(tmp_path)
    record_pointer(cluster)
    settings = settings_from_env(cluster.env | {"MARKETPLACE_RAY_ADDRESS": cluster.gcs_address})
    context = FaultContext(settings=settings, directory=Directory(settings), via="http")
    plan = parse_plan(
        {"name": "node-loss", "fault": [{"kind": "kill_node", "node": int(victim[-1]), "at": 0}]}
    )
    drawn = schedule(plan, 60, {})
    check_targets(drawn, context)
    node_loss = injector_for(drawn.faults[0], context)

    async with httpx.AsyncClient(base_url=cluster.url, timeout=60) as http:
        load, tasks = await _start_load(http, cluster)
        await asyncio.sleep(3)  # as before the upgrade: some orders, none failed
        assert len(load.orders) >= 2 and not load.failures(), load.outcomes[-10:]
        killed_at = time.monotonic()
        await node_loss.apply()
        killed = getattr(node_loss, "killed", 0)
        assert killed >= 5  # raylet, agents, actor and replica processes
        # Ray takes seconds to declare the node dead: its actors still count as there.
        assert not moved or not await node_loss.healthy()
        # Recovered: the GCS has declared the node dead, every actor is alive again elsewhere
        # (the fault's own end condition) and the gateway answers /v1/ready.
        while not await node_loss.healthy():
            assert time.monotonic() - killed_at < drawn.faults[0].fault.heal_timeout
            await asyncio.sleep(1)
        actors_back_s = time.monotonic() - killed_at
        await asyncio.to_thread(settled_placement, cluster, avoid=victim)
        await asyncio.to_thread(wait_ready, cluster, 240)
        recovered_at = time.monotonic()
        recovered_s = recovered_at - killed_at
        # Keep the load on for a while after the recovery, until checkouts that began after
        # it have gone through.
        await _checkouts_since(load, recovered_at, 6, timeout_s=180)
        await asyncio.sleep(max(0.0, recovered_at + 5 - time.monotonic()))
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        await _settle(http, load)

        failures = load.failures()
        after_recovery = [o for o in load.outcomes if o[0] > recovered_at + 2]
        print(
            f"\nkilled {victim} ({killed} processes, {len(moved)} of the marketplace's actors); "
            f"actors back after {actors_back_s:.1f} s, /v1/ready after {recovered_s:.1f} s; "
            f"{len(load.outcomes)} requests, {len(failures)} failed "
            + (
                f"(from {failures[0][0] - killed_at:+.1f} s to {failures[-1][0] - killed_at:+.1f} "
                f"s after the kill: {load.errors})"
                if failures
                else ""
            )
        )
        # Every failure belongs to the outage; after it, requests succeed again.
        assert all(killed_at - 1 <= t for t, _, _ in failures), failures
        assert after_recovery and sum(ok for _, _, ok in after_recovery) / len(after_recovery) > 0.9
        await _check_books(http, cluster, load)

    after = await asyncio.to_thread(settled_placement, cluster, avoid=victim)
    states = {n["node_id"]: n["state"] for n in after["nodes"]}
    assert states[victim_id] == "DEAD"
    assert sorted(n["node"] for n in after["nodes"] if n["state"] == "ALIVE") == [
        "head",
        survivor,
    ]
    actors = {a["name"]: a for a in after["actors"] if a["state"] == "ALIVE"}
    assert set(actors) == marketplace_actors, after["actors"]
    assert all(a["node"] == survivor for a in actors.values()), actors
    assert all(actors[name]["restarts"] >= 1 for name in moved), actors
    replicas = {r["name"].split("#")[1] for r in after["replicas"] if r["node"] == survivor}
    assert {"Gateway", "Auth"} <= replicas, after["replicas"]
