"""The load runner's pure parts: scenario files, SLO judging, load shapes over time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from load.report import judge
from load.scenario import Slo, load_scenario, scenario_names
from load.shapes import step_at

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_scenario_parses_with_slos() -> None:
    names = scenario_names()
    assert {"smoke", "steady", "ramp", "spike", "flash_sale", "soak"} <= set(names)
    for name in names:
        plan = load_scenario(name)
        assert plan.duration_s > 0, name
        assert any(plan.weights.values()), name
        assert plan.slos[0].metric == "error_rate", name
        assert len(plan.slos) > 1, f"{name} has no latency objective"


def test_flash_sale_weighs_only_flash_buyers() -> None:
    plan = load_scenario("flash_sale")
    assert {kind for kind, value in plan.weights.items() if value} == {"flash_buyer"}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('shape = "steady"\nusers = { shopper = 1 }\n', "users must weigh"),
        ('shape = "steady"\nusers = { browser = 0 }\n', "users must weigh"),
        ('shape = "zigzag"\nusers = { browser = 1 }\n', "unknown shape 'zigzag'"),
    ],
)
def test_a_bad_scenario_is_refused_with_a_reason(tmp_path: Path, body: str, complaint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(typer.BadParameter, match=complaint):
        load_scenario(str(path))


def test_an_unknown_scenario_name_lists_the_known_ones() -> None:
    with pytest.raises(typer.BadParameter, match=r"known: .*smoke"):
        load_scenario("no-such-scenario")


def row(name: str, kind: str, requests: int, failures: int, p95: str, p99: str) -> dict[str, str]:
    return {
        "Type": kind,
        "Name": name,
        "Request Count": str(requests),
        "Failure Count": str(failures),
        "95%": p95,
        "99%": p99,
    }


def test_judge_fills_values_and_returns_the_breached() -> None:
    rows = [
        row("GET /v1/products", "GET", 100, 0, "120", "300"),
        row("Aggregated", "", 200, 2, "400", "900"),
    ]
    slos = [
        Slo("Aggregated", "error_rate", 0.005),
        Slo("GET /v1/products", "p95_ms", 150),
        Slo("GET /v1/products", "p99_ms", 250),
        Slo("POST /v1/orders", "p95_ms", 1000),  # never called: no data is a breach
    ]
    breached = judge(slos, rows)
    assert [s.value for s in slos] == [0.01, 120, 300, None]
    assert breached == [slos[0], slos[2], slos[3]]
    assert slos[2].describe() == "GET /v1/products p99 300 ms > 250 ms"
    assert slos[3].describe().endswith("no data > 1000 ms")
    assert (
        judge([Slo("GET /v1/cart", "p95_ms", 10)], [row("/v1/cart", "GET", 1, 0, "5", "5")]) == []
    )


def test_shapes_follow_their_parameters() -> None:
    ramp = {"start_users": 2, "users": 12, "ramp_s": 10, "duration_s": 20}
    assert [step_at("ramp", ramp, t)[0] for t in (0, 5, 15)] == [2, 7, 12]  # type: ignore[index]
    spike = {"users": 5, "spike_users": 20, "spike_at_s": 10, "spike_s": 5, "duration_s": 30}
    users = [step_at("spike", spike, t) for t in (0, 10, 14, 15)]
    assert [u[0] for u in users if u] == [5, 25, 25, 5]
    assert step_at("flash_sale", {"users": 30}, 0) == (30, 30.0)  # everyone at once
    assert step_at("soak", {"users": 20, "ramp_s": 10}, 5) == (10, 1.0)
    assert step_at("steady", {"duration_s": 20}, 20) is None  # the run is over
    with pytest.raises(ValueError, match="unknown shape"):
        step_at("zigzag", {}, 0)


def test_the_runner_never_imports_locust() -> None:
    """Locust monkey-patches the process with gevent, which breaks the runner's own HTTP calls
    (the health check and the audit): only the Locust subprocess may import it."""
    probe = "import sys, load.cli, marketplace.cli; print('locust' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr
