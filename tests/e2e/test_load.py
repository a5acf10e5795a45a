"""``marketplace load`` against the session's served marketplace: a smoke run, a flash sale
that sells exactly its stock, and SLOs too tight to pass."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from load.cli import app
from tests.conftest import SPREAD_OVER_ACTORS
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, signup

pytestmark = pytest.mark.e2e


async def run_load(served: dict[str, Any], report: Path, *args: str) -> Any:
    """``marketplace load`` in-process (Locust itself runs in a subprocess)."""
    argv = [
        "--host",
        served["url"],
        "--report-dir",
        str(report),
        "--manifest",
        "none",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        "--quiet",
        *args,
    ]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def summary(report: Path) -> dict[str, Any]:
    return dict(json.loads((report / "summary.json").read_text()))


async def test_smoke_scenario_beside_a_fault_plan_passes_with_reports(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plan that slows things without failing a request (a slower card network, slower calls
    # from the coordinators to inventory). It joins the served marketplace's actors as a
    # `marketplace up`'s would be joined, through the settings (this process is already
    # connected to the session's Ray).
    settings = served["settings"]
    for name in ("database_url", "namespace", *SPREAD_OVER_ACTORS):
        monkeypatch.setenv(f"MARKETPLACE_{name.upper()}", str(getattr(settings, name)))
    monkeypatch.chdir(tmp_path)  # no `up` state file here
    (tmp_path / "plan.toml").write_text(
        'name = "gentle"\n'
        '[[fault]]\nkind = "payments"\nat = 3.0\nduration = 2.0\nlatency_ms = 100\n'
        '[[fault]]\nkind = "calls"\nfrom = "orders"\nto = "inventory"\nat = 6.0\n'
        "duration = 2.0\ndelay_ms = 20\n"
    )
    report = tmp_path / "smoke"
    # 12 s: the plan's faults are over by 8 s (20 s took 24 s of the test's 98 s here).
    result = await run_load(
        served, report, "--scenario", "smoke", "--duration", "12", "--faults", "plan.toml"
    )
    assert result.exit_code == 0, result.output
    done = summary(report)
    assert done["passed"] and done["audit"]["ok"], done
    assert done["requests"] > 50 and done["failures"] == 0, done
    assert "fault plan gentle (seed 7)" in result.output, result.output
    # The run's checkouts, counted by the gateway and read back from /metrics around the run.
    found = done["anomalies"]
    assert found is not None, done
    assert found["checkouts_at_seen_price"] + found["checkouts_stale_cart"] > 0, found
    assert "Consistency during the run" in result.output
    faults = done["faults"]
    assert faults["passed"] and faults["orders_terminal_after_s"] is not None, faults
    assert [f["kind"] for f in faults["faults"]] == ["payments", "calls"], faults
    assert all(f["healed_s"] is not None and f["error"] is None for f in faults["faults"])
    assert (report / "faults.csv").read_text().startswith("id,kind,fault,")
    for name in ("locust_stats.csv", "locust_stats_history.csv", "report.html"):
        assert (report / name).stat().st_size > 0, name
    for name in ("throughput.png", "latency.png", "endpoints.png"):
        assert (report / name).read_bytes().startswith(b"\x89PNG"), name
    assert "PASS" in result.output
    endpoints = (report / "locust_stats.csv").read_text()
    for endpoint in ("GET /v1/products/{id}", "POST /v1/orders", "POST /v1/products"):
        assert f",{endpoint}," in endpoints, endpoint
        assert endpoint in result.output, endpoint  # the summary table


async def test_flash_sale_sells_exactly_the_stock(
    served: dict[str, Any], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    stock = 5
    buyers = 24
    seller = await signup(http, "seller")
    created = await http.post(
        "/v1/products",
        json={"name": "Flash deal", "category": "toys", "price_cents": 999, "initial_stock": stock},
        headers=seller["headers"],
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]

    report = tmp_path / "flash"
    result = await run_load(
        served,
        report,
        "--scenario",
        "flash_sale",
        "--users",
        str(buyers),
        # Every buyer signs up, logs in and checks out once, then idles until the end: here all
        # 96 requests were done 2 s in (locust_stats_history.csv); 20 s took 22 s of the test.
        "--duration",
        "10",
        "--flash-product",
        product_id,
    )
    assert result.exit_code == 0, result.output

    logged = [json.loads(line) for line in (report / "orders.jsonl").read_text().splitlines()]
    assert len(logged) == buyers, logged  # every flash buyer checked out once
    client = served["runtime"].client
    orders = []
    for buyer_id in {line["buyer_id"] for line in logged}:
        for order in await client.list_orders(buyer_id):
            if any(item.product_id == product_id for item in order.items):
                orders.append(order)
    assert len(orders) == buyers
    confirmed = [o for o in orders if o.status.value == "confirmed"]
    others = [o for o in orders if o.status.value != "confirmed"]
    assert len(confirmed) == stock
    assert all(o.status.value == "cancelled" for o in others), [o.status for o in others]
    assert {o.failure_reason for o in others} == {"out_of_stock"}
    level = await client.get_stock(product_id)
    assert (level.available, level.sold, level.reserved) == (0, stock, 0), level
    assert summary(report)["audit"]["ok"]


async def test_a_tight_slo_fails_and_is_named(served: dict[str, Any], tmp_path: Path) -> None:
    scenario = tmp_path / "too_tight.toml"
    scenario.write_text(
        'description = "browsing against an impossible latency objective"\n'
        'shape = "steady"\n'
        "users = { browser = 1 }\n"
        "[shape_params]\nusers = 3\nspawn_rate = 3\nduration_s = 4\n"
        "[slo]\nerror_rate = 0.0\n"
        '[slo.endpoints."GET /v1/products"]\np95_ms = 0.01\n'
    )
    report = tmp_path / "tight"
    result = await run_load(served, report, "--scenario", str(scenario))
    assert result.exit_code == 1, result.output
    assert "SLO breached: GET /v1/products p95" in result.output
    done = summary(report)
    assert not done["passed"] and done["audit"]["ok"]
    assert done["breached"] and done["breached"][0].startswith("GET /v1/products p95")


def test_no_marketplace_at_the_host_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = tmp_path / "nothing"
    result = CliRunner().invoke(
        app, ["--host", f"http://127.0.0.1:{port}", "--report-dir", str(report), "--quiet"]
    )
    assert result.exit_code == 2, result.output
    assert f"no marketplace answers at http://127.0.0.1:{port}" in result.output
    assert not (report / "locust_stats.csv").exists()
