"""The simulator over HTTP: a market seeded through the contract, then the ``om`` and ``flash``
workloads run through ``HttpTarget`` against the served gateway, and the audit after."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.sim.behaviours import carrier_ids
from marketplace.sim.http_seed import HttpMarket, bearer, seed_over_http
from marketplace.sim.http_target import HTTP_5XX, HttpTarget
from marketplace.sim.loops import OpRecord
from marketplace.sim.market import generate_market
from marketplace.sim.operations import OPERATION_KINDS
from marketplace.sim.shopping import IDLE
from marketplace.sim.simulation import SimConfig, build_market, simulate
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.support import audit_ok, ok

pytestmark = pytest.mark.e2e

# The market (seed 8) and the two workloads' seeds were picked so that, between them, every
# operation kind is drawn (``om`` never restocks or abandons a cart; ``flash`` rarely checks
# out) and no checkout of one run reuses an idempotency key of the other. The first assertion
# says so if the generator changes.
OM = SimConfig(preset="om", rate=20, duration=4, seed=8, sellers=3, products=30, buyers=10)
FLASH = dataclasses.replace(OM, preset="flash", seed=30)


def reasons(records: list[OpRecord]) -> Counter[tuple[str, str | None]]:
    """How many operations of each kind ended with each outcome reason (None: ok)."""
    return Counter((r.kind, r.outcome.reason) for r in records)


async def test_simulation_runs_every_operation_over_http(served: dict[str, Any]) -> None:
    market = build_market(OM)
    carriers = carrier_ids(market, max(OM.the_preset.carriers, FLASH.the_preset.carriers))
    seeded = await seed_over_http(
        served["url"],
        market,
        carriers=carriers,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
    )
    assert set(seeded.tokens) == {u.email for u in (*market.sellers, *market.buyers)} | set(
        carriers
    )
    assert set(seeded.product_ids) == {p.product_id for p in market.products}

    async with HttpTarget(seeded, limit=32) as target:
        om = await simulate(target, market, OM)
        flash = await simulate(target, market, FLASH)
    records = om.records + flash.records
    seen = reasons(records)

    assert {r.kind for r in records} == set(OPERATION_KINDS), seen
    assert not any(r.outcome.reason == HTTP_5XX for r in records), seen
    # Stock is plentiful and the card approves: nothing is refused. A checkout may only be
    # pending (the saga outlived the request); a carrier may find nothing due.
    allowed = {("checkout", "pending"), ("move_shipment", IDLE)}
    refused = {key: n for key, n in seen.items() if key[1] is not None and key not in allowed}
    assert not refused, seen
    assert seen[("checkout", None)] > 0, seen
    assert seen[("move_shipment", None)] > 0, seen
    assert target.deliveries.delivered + len(target.deliveries) > 0

    async with httpx.AsyncClient(base_url=served["url"], timeout=60) as http:
        await audit_ok(http)
        # Every checkout that was answered (confirmed or pending) is one of the buyers' orders.
        orders = 0
        for buyer in market.buyers:
            page = ok(await http.get("/v1/orders?limit=100", headers=_auth(seeded, buyer.email)))
            orders += len(page["items"])
        assert orders == seen[("checkout", None)] + seen[("checkout", "pending")]


async def test_seeding_the_same_market_twice_reuses_it(served: dict[str, Any]) -> None:
    market = generate_market(9, sellers=2, products=6, buyers=3)
    carriers = carrier_ids(market, 1)

    async def seed() -> HttpMarket:
        return await seed_over_http(
            served["url"],
            market,
            carriers=carriers,
            admin_email=ADMIN_EMAIL,
            admin_password=ADMIN_PASSWORD,
            concurrency=4,
        )

    first = await seed()
    again = await seed()  # every registration answers 409: the accounts are logged in instead
    assert again.user_ids == first.user_ids
    assert len(set(first.user_ids.values())) == len(market.sellers) + len(market.buyers) + 1
    assert again.product_ids == first.product_ids
    assert len(set(first.product_ids.values())) == len(market.products)
    assert set(again.tokens) == set(first.user_ids)

    async with httpx.AsyncClient(base_url=served["url"], timeout=60) as http:
        for spec in market.products:
            product_id = first.product_ids[spec.product_id]
            # Listed once, stocked once: the second seeding's listing was a replay.
            stock = ok(await http.get(f"/v1/products/{product_id}/stock"))
            assert stock["available"] == spec.stock
            product = ok(await http.get(f"/v1/products/{product_id}"))
            owner = market.sellers[spec.seller_index].email
            assert product["seller_id"] == first.user_ids[owner]
        for seller in market.sellers:
            listed = ok(
                await http.get(
                    "/v1/products", params={"seller_id": first.user_ids[seller.email], "limit": 100}
                )
            )
            mine = [p for p in market.products if market.sellers[p.seller_index] == seller]
            assert len(listed["items"]) == len(mine)
        # The second seeding's tokens work, and the carrier's is a carrier's.
        me = ok(await http.get("/v1/users/me", headers=_auth(again, carriers[0])))
        assert me["role"] == "carrier"


def _auth(seeded: HttpMarket, email: str) -> dict[str, str]:
    return bearer(seeded.tokens[email])


def test_marketplace_simulate_over_http_writes_results_and_audits(
    served: dict[str, Any], tmp_path: Path
) -> None:
    from tests.integration.test_cli import marketplace, output

    ran = marketplace(
        tmp_path,
        "simulate",
        "--via", "http",
        "--host", served["url"],
        "--preset", "om",
        "--rate", "20",
        "--duration", "4",
        "--seed", "41",
        "--sellers", "3",
        "--products", "30",
        "--buyers", "10",
        "--out", "res",
        MARKETPLACE_ADMIN_EMAIL=ADMIN_EMAIL,
        MARKETPLACE_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )  # fmt: skip
    assert ran.returncode == 0, output(ran)
    assert "All invariants hold." in ran.stdout, output(ran)
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["config"]["via"] == "http"
    assert summary["audit"]["ok"] is True
    assert summary["kinds"]["checkout"]["ok"] > 0
    assert not [reason for reason in summary["anomalies"] if reason.endswith(HTTP_5XX)]
    assert (tmp_path / "res" / "throughput.png").stat().st_size > 0
