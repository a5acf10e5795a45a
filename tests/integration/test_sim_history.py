"""A simulation's recorded history against the real runtime: product reads and writes through
the in-process client, checked against the catalog's default mode (strong); and
``marketplace simulate --check-consistency`` as a user runs it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from marketplace.consistency import History, Kind, Mode, Outcome, check
from marketplace.sim.arrivals import poisson
from marketplace.sim.client_target import ClientTarget
from marketplace.sim.loops import run_open
from marketplace.sim.market import generate_market
from marketplace.sim.presets import Activity, Preset
from marketplace.sim.seed import seed_market
from marketplace.sim.workload import Workload
from tests.conftest import MakeMarketplace
from tests.integration.test_cli import marketplace, output

pytestmark = pytest.mark.integration

# The presets write rarely (2 to 5% of activities); this one writes often, on few products,
# so that reads meet writes of the same product.
READS_AND_WRITES = Preset(
    name="reads-and-writes",
    description="sessions and frequent price and product updates",
    mix={Activity.SESSION: 0.6, Activity.PRICE_UPDATE: 0.25, Activity.PRODUCT_UPDATE: 0.15},
)


async def test_a_simulation_records_a_history_that_is_strongly_consistent(
    make_marketplace: MakeMarketplace,
) -> None:
    runtime = await make_marketplace(database="sqlite")
    client = runtime.client
    market = generate_market(3, sellers=3, products=8, buyers=12)
    manifest = await seed_market(client, market, write=False)
    history = History()  # a fresh marketplace: every product starts at version 1
    target = ClientTarget(client, manifest, history=history)
    schedule = poisson(random.Random(4), rate=80, duration=5)
    workload = Workload(market, READS_AND_WRITES, random.Random(5))
    result = await run_open(target, schedule, workload.stream(schedule), duration=5)

    ops = history.operations()
    ok_reads = sum(1 for o in ops if o.kind is Kind.READ and o.outcome is Outcome.OK)
    ok_writes = sum(1 for o in ops if o.kind is Kind.WRITE and o.outcome is Outcome.OK)
    browses = sum(1 for r in result.records if r.kind == "browse" and r.outcome.ok)
    assert ok_reads == browses > 50
    assert ok_writes > 10
    verdict = check(history, Mode.STRONG)
    assert verdict.ok, str(verdict)


def test_marketplace_simulate_checks_the_history_it_records(
    tmp_path: Path, ray_address: str
) -> None:
    ran = marketplace(
        tmp_path,
        "simulate",
        "--preset", "om",
        "--duration", "5",
        "--rate", "40",
        "--products", "10",
        "--buyers", "20",
        "--check-consistency", "strong",
        "--out", "res",
        MARKETPLACE_RAY_ADDRESS=ray_address,
    )  # fmt: skip
    assert ran.returncode == 0, output(ran)
    assert "strong check of" in ran.stdout, output(ran)
    folder = tmp_path / "res"
    history = History.load(folder / "history.jsonl")
    assert any(o.kind is Kind.READ for o in history.operations())
    consistency = json.loads((folder / "summary.json").read_text())["consistency"]
    assert consistency["mode"] == "strong" and consistency["ok"] is True, consistency
    assert consistency["reads"] > 0
