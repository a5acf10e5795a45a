"""The gateway benchmark's own arithmetic: rounds merged into medians, endpoint selection."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.bench.gateway.command import config_from, parse_args
from marketplace.bench.gateway.results import EndpointResult, merge_rounds

pytestmark = pytest.mark.unit


def result(rps: float, p99: float = 10.0, status: str = "200") -> EndpointResult:
    return EndpointResult(
        endpoint="product",
        requests=int(rps * 10),
        errors=0,
        seconds=10.0,
        rps=rps,
        p50_ms=5.0,
        p99_ms=p99,
        mean_ms=6.0,
        client_cpu=None,
        machine_cpu=0.5,
        statuses={status: int(rps * 10)},
    )


def test_ratio_is_the_median_of_each_rounds_ratio_to_its_own_health() -> None:
    # A slow round (a noisy neighbour) halves both health and product: its ratio is unchanged.
    merged = merge_rounds([result(500), result(250), result(600)], health=[1000, 500, 1000])
    assert merged.ratio_to_health == pytest.approx(0.5)
    assert merged.rps == 500
    assert merged.round_rps == [500, 250, 600]
    assert merged.requests == 13_500
    assert merged.statuses == {"200": 13_500}
    assert merged.machine_cpu == 0.5
    assert merged.client_cpu is None


def test_endpoints_always_include_health_in_the_canonical_order() -> None:
    config = config_from(parse_args(["--endpoints", "checkout,product", "--rounds", "3"]))
    assert config.endpoints == ("health", "product", "checkout")
    assert config.rounds == 3


@pytest.mark.parametrize("argv", [["--endpoints", "products"], ["--rounds", "0"]])
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_cpu_per_request_is_the_median_per_process_role() -> None:
    rounds = [result(500), result(250), result(600)]
    for r, coordinator in zip(rounds, (6.0, 9.0, 5.0), strict=True):
        r.cpu_ms = {"OrderCoordinator": coordinator, "Gateway replicas": 3.0}
    rounds[1].cpu_ms.pop("Gateway replicas")  # a role missing from a round counts as 0 there
    merged = merge_rounds(rounds, health=[1000, 500, 1000])
    assert merged.cpu_ms == {"OrderCoordinator": 6.0, "Gateway replicas": 3.0}


def test_the_colocated_topology_is_measured_once_on_the_first_ingress() -> None:
    from marketplace.bench.gateway.config import run_label, runs_of

    both = config_from(parse_args([]))
    assert runs_of(both) == [
        ("haproxy", "distributed"),
        ("python", "distributed"),
        ("haproxy", "colocated"),
    ]
    assert [run_label(*pair) for pair in runs_of(both)] == [
        "haproxy",
        "python",
        "haproxy+colocated",
    ]
    only = config_from(parse_args(["--topology", "colocated", "--ingress", "python"]))
    assert runs_of(only) == [("python", "colocated")]
    assert runs_of(config_from(parse_args(["--topology", "distributed"]))) == [
        ("haproxy", "distributed"),
        ("python", "distributed"),
    ]


def test_each_topology_is_held_to_its_own_goals() -> None:
    from marketplace.bench.gateway.report import goals

    def run(topology: str, checkout: float) -> dict[str, object]:
        return {
            "topology": topology,
            "endpoints": {
                "product": {"ratio_to_health": 1.2},
                "checkout": {"ratio_to_health": checkout},
            },
        }

    met, _ = goals(
        {"haproxy": run("distributed", 0.27), "haproxy+colocated": run("colocated", 0.27)}
    )
    assert met["haproxy.checkout"]["met"] is True
    assert met["haproxy+colocated.checkout"] == {"ratio": 0.27, "goal": 0.30, "met": False}


def test_ray_calls_per_checkout_are_held_to_each_topologys_bound() -> None:
    from marketplace.bench.gateway.report import goals

    def run(topology: str, calls: float | None) -> dict[str, object]:
        checkout = {"ratio_to_health": 0.1, "ray_calls_per_checkout": calls}
        return {"topology": topology, "endpoints": {"checkout": checkout}}

    met, lines = goals(
        {"haproxy": run("distributed", 2.9), "haproxy+colocated": run("colocated", 1.9)}
    )
    assert met["haproxy.ray_calls_per_checkout"] == {"value": 2.9, "at_most": 3.0, "met": True}
    assert met["haproxy+colocated.ray_calls_per_checkout"]["met"] is False
    assert any("at most 1.5 Ray calls per checkout: 1.90" in line for line in lines)
    assert "haproxy.ray_calls_per_checkout" not in goals({"haproxy": run("distributed", None)})[0]


def test_ray_calls_per_checkout_come_from_two_readings() -> None:
    from marketplace.bench.gateway.ray_calls import Reading, per_checkout

    assert per_checkout(Reading(100.0, 10.0), Reading(390.0, 110.0)) == 2.9
    assert per_checkout(Reading(100.0, 10.0), Reading(150.0, 10.0)) is None  # none confirmed
    assert per_checkout(None, Reading(1.0, 1.0)) is None  # metrics unreadable


def test_health_is_held_against_the_bare_no_op() -> None:
    from marketplace.bench.gateway.report import goals

    runs = {"haproxy": {"endpoints": {"health": {"rps": 1500.0, "ratio_to_health": 1.0}}}}
    met, lines = goals(runs, {"rps": 10_000.0})
    assert met["haproxy.health_over_noop"] == {"ratio": 0.15, "goal": 0.20, "met": False}
    assert any("bare uvicorn no-op: 0.15x" in line for line in lines)
    met, _ = goals(runs, {"rps": 5_000.0})
    assert met["haproxy.health_over_noop"]["met"] is True
    assert "haproxy.health_over_noop" not in goals(runs)[0]


def test_the_markdown_table_is_written_from_the_figures() -> None:
    from marketplace.bench.gateway.markdown import markdown

    def run(checkout_rps: float, cell_ms: float) -> dict[str, object]:
        return {
            "startup_s": 20.0,
            "endpoints": {
                "health": {"rps": 2000.0, "ratio_to_health": 1.0, "cpu_ms": {}},
                "checkout": {
                    "rps": checkout_rps,
                    "ratio_to_health": checkout_rps / 2000.0,
                    "cpu_ms": {"Cell": cell_ms, "Gateway replicas": 1.5},
                    "ray_calls_per_checkout": cell_ms,
                },
            },
            "signups": None,
        }

    figures = {
        "ingresses": {"haproxy": run(200.0, 3.0), "haproxy+colocated": run(300.0, 2.0)},
        "goals": {
            "haproxy+colocated.checkout": {"ratio": 0.15, "goal": 0.3, "met": False},
            "haproxy.ray_calls_per_checkout": {"value": 2.5, "at_most": 3.0, "met": True},
        },
        "noop": {"rps": 12_000.0},
        "client_ceiling": None,
    }
    table = markdown(figures)
    assert "| | haproxy | haproxy+colocated |" in table
    assert "| `POST /v1/orders` rps (/ health) | 200.0 (0.10x) | 300.0 (0.15x) |" in table
    assert "4.50 (Cell 3.00, Gateway replicas 1.50)" in table
    assert "product" not in table and "sign-up" not in table  # rows nobody measured are left out
    assert "- `haproxy+colocated.checkout`: 0.150x against 0.3x, not met" in table
    assert "| Ray calls per checkout, all processes | 3.00 | 2.00 |" in table
    assert "- `haproxy.ray_calls_per_checkout`: 2.50, at most 3, met" in table
    assert "bare uvicorn no-op 12,000 rps" in table


def test_goals_of_endpoints_not_measured_are_left_out() -> None:
    from marketplace.bench.gateway.report import goals

    met, lines = goals({"haproxy": {"endpoints": {"health": {"rps": 100.0}}}})
    assert met == {} and lines == []


def test_the_cost_of_metrics_and_tracing_compares_runs_with_their_twins_without() -> None:
    from marketplace.bench.gateway.config import run_label
    from marketplace.bench.gateway.report import observability_cost, observability_cost_lines

    def run(rps: float, cpu: dict[str, float], variant: str) -> dict[str, Any]:
        return {
            "ingress": "haproxy",
            "topology": "distributed",
            "variant": variant,
            "endpoints": {"checkout": {"rps": rps, "cpu_ms": cpu}},
        }

    assert observability_cost({"haproxy": run(100, {"a": 1}, "")}) is None
    runs = {
        "haproxy": run(96.0, {"gateway": 2.0, "actors": 4.2}, ""),
        run_label("haproxy", "distributed", "-nometrics"): run(
            100.0, {"gateway": 2.0, "actors": 4.0}, "-nometrics"
        ),
        run_label("haproxy", "distributed", "-trace100%"): run(
            48.0, {"gateway": 4.0, "actors": 8.4}, "-trace100%"
        ),
    }
    assert list(runs) == ["haproxy", "haproxy-nometrics", "haproxy-trace100%"]
    cost = observability_cost(runs)
    assert cost is not None and list(cost) == ["metrics on / off", "tracing 100% / off"]
    # Metrics: the default (on) over the run without; tracing: the traced run over the default.
    assert cost["metrics on / off"]["checkout"]["rps_on_over_off"] == pytest.approx(0.96)
    assert cost["metrics on / off"]["checkout"]["cpu_on_over_off"] == pytest.approx(6.2 / 6.0)
    assert cost["tracing 100% / off"]["checkout"]["rps_on_over_off"] == pytest.approx(0.5)
    assert cost["tracing 100% / off"]["checkout"]["cpu_on_over_off"] == pytest.approx(2.0)
    metrics_line, tracing_line = observability_cost_lines(cost)
    assert metrics_line.startswith("metrics on / off, checkout")
    assert "0.960x" in metrics_line and "1.033x" in metrics_line
    assert tracing_line.startswith("tracing 100% / off, checkout") and "0.500x" in tracing_line
