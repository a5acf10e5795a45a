"""Experiment files, point expansion, metrics, the best-point and knee rules, and the report
(from synthetic rows: no Ray)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from marketplace.config import ACTOR_COUNTS
from marketplace.sim.experiments import (
    ExperimentError,
    SpecError,
    builtin_names,
    expand,
    load_spec,
    parse_spec,
    spec_from_mapping,
    write_report,
)
from marketplace.sim.experiments.metrics import in_flight, littles_law, metrics, timeline
from marketplace.sim.experiments.report import (
    best_point,
    knee_index,
    knees,
    mean_table,
)
from marketplace.sim.experiments.run import resolve
from marketplace.sim.experiments.spec import METRICS, QUICK_DURATION_S, ReportSpec
from marketplace.sim.loops import DROPPED, OK, OpRecord, Outcome, RunResult, summarize

pytestmark = pytest.mark.unit

MINIMAL = """
name = "demo"
description = "A demo."
repeats = 2

[settings]
durability = "async"

[workload]
rate = 120
duration = 10
products = 40

[sweep]
actors = [1, 2]
rate = [50, 100, 200]

[[plot]]
x = "rate"
y = ["p99_ms", "achieved_rate"]
series = "actors"
"""


def parse_error(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "demo.toml")
    return str(caught.value)


# -- parsing -------------------------------------------------------------------------------------


def test_a_valid_file_parses_in_order() -> None:
    spec = parse_spec(MINIMAL, "demo.toml")
    assert spec.name == "demo"
    assert spec.repeats == 2
    assert spec.via == "client"
    assert spec.knobs == ("actors", "rate")
    assert spec.sweep["rate"] == (50.0, 100.0, 200.0)
    assert dict(spec.settings) == {"durability": "async"}
    assert spec.workload["products"] == 40
    (plot,) = spec.plots
    assert (plot.x, plot.y, plot.series) == ("rate", ("p99_ms", "achieved_rate"), "actors")
    assert plot.file_name == "p99_ms-achieved_rate-vs-rate.png"
    # the report defaults: the first swept knob, the achieved rate, highest wins
    assert spec.report == ReportSpec(x="actors", metric="achieved_rate", goal="max")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nmae = 'x'", "demo.toml: nmae: unknown key; valid keys here:"),
        ("[sweep]\ncatalog_shrads = [1]", "demo.toml: sweep.catalog_shrads: unknown knob"),
        ("[settings]\nrate = 3", "demo.toml: settings.rate: unknown knob"),
        ("[workload]\ndurability = 'sync'", "demo.toml: workload.durability: unknown knob"),
        ("[sweep]\ndatabase_url = ['x']", "sweep.database_url: is set per point by the runner"),
        ("[workload]\nrate = 'fast'", "demo.toml: workload.rate: must be a float"),
        ("[workload]\npreset = 'nope'", "workload.preset: unknown preset 'nope'"),
        ("[sweep]\ncatalog_shards = [0, 2]", "demo.toml: sweep.catalog_shards[0]: "),
        ("[sweep]\ndurability = ['sync', 'eventually']", "sweep.durability[1]: "),
        ("[sweep]\nrate = []", "demo.toml: sweep.rate: must be a non-empty list"),
        ("[sweep]\nrate = 5", "demo.toml: sweep.rate: must be a non-empty list"),
        ("[sweep]\nrate = [5, 5]", "demo.toml: sweep.rate: lists a value twice"),
        ("repeats = 0", "demo.toml: repeats: must be an integer >= 1"),
        ("via = 'carrier pigeon'", "demo.toml: via: must be one of client, http"),
        ("[sweep]\nrate = [1]\n[quick.sweep]\nseed = [1]", "quick.sweep.seed: is not swept"),
        ("[quick]\nduration = 3", "demo.toml: quick.duration: unknown key"),
        ("[sweep]\nrate = [1]\n[report]\nx = 'seed'", "report.x: 'seed' is not a swept knob"),
        ("[report]\ngoal = 'most'", "demo.toml: report.goal: must be max or min"),
        ("[sweep]\nrate = [1]\n[[plot]]\ny = 'p98_ms'", "plot[0].y: 'p98_ms' is not a column"),
        (
            "[sweep]\nrate = [1]\n[[plot]]\ny = 'p99_ms'\n[[plot]]\ny = 'p99_ms'",
            "demo.toml: plot: two plots would write the same file",
        ),
        ("[workload]\nagents = 0", "demo.toml: workload.agents: agents must be >= 1"),
        ("[[plot]]\nkind = 'pie'", "demo.toml: plot[0].kind: must be sweep or timeline"),
        ("[[plot]]\nkind = 'timeline'\ny = 'p99'", "plot[0].y: 'p99' is not a column"),
        ("[[plot]]\nkind = 'timeline'\nx = 'rate'", "plot[0].x: a timeline's x is t"),
        ("[sweep = ", "demo.toml: not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(text: str, expected: str) -> None:
    assert expected in parse_error(text)


def test_an_unknown_knob_lists_the_valid_ones() -> None:
    message = parse_error("[sweep]\nshards = [1, 2]")
    for knob in ("actors", "catalog_shards", "durability", "rate", "zipf", "payment_latency_ms"):
        assert knob in message


def test_a_bad_combination_is_refused_before_running() -> None:
    # Each value is valid alone; together (think time swept to a value SimConfig refuses)
    # they are checked when the points are expanded at load.
    message = parse_error("[workload]\nagents = 3\n[sweep]\nthink_time = [1, 0]")
    assert "think_time" in message


def test_a_spec_from_a_mapping_is_checked_the_same_way() -> None:
    spec = spec_from_mapping({"workload": {"rate": 100}, "sweep": {"actors": [1, 2]}}, "mine")
    assert spec.name == "mine" and spec.knobs == ("actors",)
    with pytest.raises(SpecError, match=r"mine: sweep\.actors\[1\]"):
        spec_from_mapping({"sweep": {"actors": [1, 0]}}, "mine")


def test_files_and_builtins_load_by_path_or_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL)
    assert load_spec(path).source == str(path)
    path.write_text("[sweep]\nrate = [1, 'x']")
    with pytest.raises(SpecError, match=f"{path}: sweep.rate\\[1\\]"):
        load_spec(path)
    with pytest.raises(SpecError, match=r"no built-in experiment of that name .*scaling"):
        load_spec("no-such-experiment")


def test_the_builtins_parse_and_their_quick_runs_are_short() -> None:
    assert set(builtin_names()) >= {"scaling", "latency", "durability", "hot-product"}
    assert "autoscaling" in builtin_names()
    for name in builtin_names():
        spec = load_spec(name)
        assert spec.source == f"builtin:{name}"
        quick = spec.quickened()
        runs = expand(quick)
        assert 2 <= len(runs) <= 3, name
        assert quick.repeats == 1
        assert all(run.config.duration <= 20 for run in runs), name
        assert spec.plots, name
    assert load_spec("autoscaling").via == "http"
    assert load_spec("scaling").sweep["actors"] == (1, 2, 4)


def test_http_experiments_are_not_available_yet() -> None:
    with pytest.raises(ExperimentError, match='via = "http" is not available yet'):
        resolve("autoscaling", quick=True)
    assert resolve("scaling", quick=True).sweep["actors"] == (1, 2)


# -- points --------------------------------------------------------------------------------------


def test_points_are_the_product_of_the_sweeps_times_the_repeats() -> None:
    points = expand(parse_spec(MINIMAL, "demo.toml"))
    assert len(points) == 2 * 3 * 2
    assert [(p.index, p.repeat) for p in points[:4]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # the first knob varies slowest
    assert [dict(p.knobs) for p in points[::2]] == [
        {"actors": a, "rate": r} for a in (1, 2) for r in (50.0, 100.0, 200.0)
    ]
    first, second = points[0], points[1]
    assert first.config.rate == 50.0 and first.config.products == 40
    assert (first.config.seed, second.config.seed) == (7, 8)  # repeat r: seed + r - 1
    assert points[2].config.seed == 7  # every combination sees the same seeds
    assert first.label() == "actors=1 rate=50"
    settings = first.runtime_settings(database_url="sqlite:///x.db", namespace="n")
    assert settings.durability == "async"
    assert all(getattr(settings, count) == 1 for count in ACTOR_COUNTS)
    assert all(getattr(points[-1].runtime_settings(), c) == 2 for c in ACTOR_COUNTS)


def test_an_actor_count_named_wins_over_actors() -> None:
    spec = parse_spec("[settings]\ncatalog_shards = 3\n[sweep]\nactors = [2]", "demo.toml")
    (point,) = expand(spec)
    settings = point.runtime_settings()
    assert settings.catalog_shards == 3
    assert settings.inventory_partitions == settings.payment_processors == 2


def test_quick_applies_the_quick_table_and_shrinks_the_rest() -> None:
    text = (
        MINIMAL + "\n[quick]\nrepeats = 1\nworkload = { products = 10 }\nsweep = { actors = [4] }"
    )
    quick = parse_spec(text, "demo.toml").quickened()
    assert quick.repeats == 1
    assert quick.sweep["actors"] == (4,)
    assert quick.sweep["rate"] == (50.0, 200.0)  # more than two values: first and last
    assert quick.workload["duration"] == QUICK_DURATION_S
    assert quick.workload["products"] == 10
    assert len(expand(quick)) == 2
    explicit = parse_spec(MINIMAL + "\n[quick.workload]\nduration = 7", "d.toml").quickened()
    assert explicit.workload["duration"] == 7


def test_the_zipf_knob_replaces_the_presets_exponent() -> None:
    from marketplace.sim.simulation import SimConfig, build_market

    assert SimConfig().the_preset.zipf == 1.0
    hot = SimConfig(zipf=2.0, products=50)
    assert hot.the_preset.zipf == 2.0 and hot.the_preset.name == "om"
    assert "Zipf 2" in hot.describe()
    top = build_market(hot).products[0].weight
    assert top > 2 * build_market(SimConfig(products=50)).products[0].weight
    with pytest.raises(ValueError, match="zipf must be >= 0"):
        SimConfig(zipf=-1.0)


# -- metrics -------------------------------------------------------------------------------------


def done(kind: str, intended: float, ended: float, outcome: Outcome = OK) -> OpRecord:
    return OpRecord(kind, intended, intended, ended, ended - intended, outcome)


def test_in_flight_integrates_the_concurrency() -> None:
    records = [done("browse", 0.0, 2.0), done("browse", 1.0, 3.0), done("checkout", 3.0, 4.0)]
    mean, peak = in_flight(records, 0.0, 4.0)
    assert mean == pytest.approx((2 + 2 + 1) / 4)
    assert peak == 2  # the third starts as the second ends: not three at once
    mean, _ = in_flight(records, 1.0, 2.0)  # clipped to the window
    assert mean == pytest.approx(2.0)


def test_littles_law_agrees_in_a_steady_state_and_parts_when_queues_grow() -> None:
    # one operation every 0.1 s, each taking 0.3 s: L = 3 = 10/s x 0.3 s
    steady = [done("browse", i / 10, i / 10 + 0.3) for i in range(100)]
    l_value, lambda_w = littles_law(steady, 10.0)
    assert l_value == pytest.approx(3.0, rel=0.05)
    assert lambda_w == pytest.approx(3.0, rel=0.05)
    # latency that keeps growing: the operations in flight outrun those ending in the window
    growing = [done("browse", i / 10, i / 10 + i / 20) for i in range(100)]
    l_value, lambda_w = littles_law(growing, 10.0)
    assert lambda_w is not None and l_value > 1.2 * lambda_w


def test_metrics_of_a_run() -> None:
    records = [
        done("browse", 0.0, 0.010),
        done("checkout", 0.5, 0.600),
        done("checkout", 1.0, 1.050, Outcome.failure("out_of_stock")),
        OpRecord("browse", 1.5, None, None, None, Outcome.failure(DROPPED)),
    ]
    result = RunResult(records, summarize(records, 2.0, 2.0))
    row = metrics(result, 2.0)
    assert (row["ops"], row["ok"], row["failed"], row["dropped"]) == (4, 2, 1, 1)
    assert row["checkout_ok"] == 1 and row["checkout_failed"] == 1
    assert row["p50_ms"] == pytest.approx(50.0)
    assert row["checkout_p99_ms"] == pytest.approx(100.0)
    assert row["achieved_rate"] == pytest.approx(1.5)
    assert row["failures"] == "checkout:out_of_stock=1"  # drops have their own column
    # the columns files may name: measured here up to elapsed_s, the runner adds the rest
    measured = METRICS[: METRICS.index("elapsed_s") + 1]
    assert set(measured) <= set(row)


def test_the_timeline_counts_each_second() -> None:
    records = [
        done("browse", 0.1, 0.3),
        done("browse", 0.5, 1.5, Outcome.failure("timeout")),
        done("checkout", 1.2, 1.4),
        OpRecord("browse", 1.8, None, None, None, Outcome.failure(DROPPED)),
    ]
    first, second = timeline(records, 2.0)
    assert (first["t"], first["offered"], first["achieved"], first["failed"]) == (0.0, 2.0, 1, 0)
    assert (second["offered"], second["achieved"], second["failed"]) == (2.0, 2, 2)
    assert first["p99_ms"] == pytest.approx(200.0)
    assert second["p50_ms"] == pytest.approx(200.0) and second["p99_ms"] == pytest.approx(1000.0)
    assert first["in_flight"] == pytest.approx(0.2 + 0.5)
    assert second["in_flight"] == pytest.approx(0.5 + 0.2)


# -- best point, knee, report --------------------------------------------------------------------


def test_the_knee_of_a_saturating_curve_is_where_it_flattens() -> None:
    at, distance = knee_index([1, 2, 4, 8], [100, 190, 200, 205])
    assert at == 1 and distance is not None and distance > 0.3


def test_the_knee_of_a_latency_curve_is_before_it_climbs() -> None:
    at, _ = knee_index([100, 200, 300, 400], [10, 11, 12, 200])
    assert at == 2


def test_a_curve_that_rises_and_falls_back_has_its_knee_at_the_peak() -> None:
    at, distance = knee_index([0.5, 1.25, 2.0], [780.0, 4000.0, 860.0])
    assert at == 1 and distance is not None and 0.9 < distance <= 1.0


def test_a_straight_line_or_too_few_points_has_no_knee() -> None:
    at, distance = knee_index([1, 2, 3, 4], [10, 20, 30, 41])
    assert at is None and distance is not None and distance < 0.1
    assert knee_index([1, 2], [5, 10]) == (None, None)
    assert knee_index([1, 2, 3], [5, 5, 5]) == (None, 0.0)


def row(
    point: int, repeat: int, actors: int, rate: float, p99: float, **more: Any
) -> dict[str, Any]:
    base = {
        "point": point,
        "repeat": repeat,
        "actors": actors,
        "offered_rate": 400.0,
        "achieved_rate": rate,
        "ops": 100,
        "ok": 100,
        "failed": 0,
        "dropped": 0,
        "p50_ms": p99 / 10,
        "p99_ms": p99,
        "checkout_p99_ms": p99,
        "little_l": 1.0,
        "little_lambda_w": 1.0,
        "audit_ok": True,
        "failures": "-",
    }
    return {**base, **more}


SCALING_ROWS = [
    row(1, 1, 1, 200.0, 900.0),
    row(1, 2, 1, 220.0, 1100.0),
    row(2, 1, 2, 350.0, 300.0),
    row(2, 2, 2, 370.0, 320.0),
    row(3, 1, 4, 390.0, 250.0, audit_ok=False),
    row(3, 2, 4, 400.0, 240.0),
    row(4, 1, 8, 395.0, 260.0),
    row(4, 2, 8, 385.0, 280.0),
]
SCALING = """
name = "synthetic"
repeats = 2
[workload]
rate = 400
[sweep]
actors = [1, 2, 4, 8]
[[plot]]
x = "actors"
y = ["achieved_rate", "p99_ms"]
"""


def test_mean_table_averages_repeats_sums_counts_and_ands_audits() -> None:
    table = mean_table(SCALING_ROWS, ["actors"])
    assert [r["point"] for r in table] == [1, 2, 3, 4]
    first = table[0]
    assert first["runs"] == 2
    assert first["achieved_rate"] == pytest.approx(210.0)
    assert first["ok"] == 200
    assert first["audit_ok"] is True
    assert table[2]["audit_ok"] is False


def test_the_best_point_passed_its_audit_and_meets_the_slo() -> None:
    table = mean_table(SCALING_ROWS, ["actors"])
    best = best_point(table, ReportSpec(x="actors"))
    # point 3 has the highest mean rate but one of its audits failed
    assert best is not None and best["point"] == 4
    # within 300 ms only points 3 (audit failed) and 4 qualify; within 100 ms none does
    within = best_point(table, ReportSpec(x="actors", slo_p99_ms=300.0))
    assert within is not None and within["point"] == 4
    fastest = best_point(table, ReportSpec(x="actors", metric="p99_ms", goal="min"))
    assert fastest is not None and fastest["point"] == 4
    strict = best_point(table, ReportSpec(x="actors", slo_p99_ms=100.0))
    assert strict is None
    tied = [dict(r, achieved_rate=1.0, audit_ok=True) for r in table]
    first = best_point(tied, ReportSpec(x="actors"))
    assert first is not None and first["point"] == 1  # a tie goes to the smaller setup


def test_knees_per_series_and_for_non_numeric_knobs() -> None:
    spec = parse_spec(SCALING, "s.toml")
    (knee,) = knees(mean_table(SCALING_ROWS, ["actors"]), spec)
    assert knee.series == "all" and knee.x == 2
    modes = parse_spec("[sweep]\ndurability = ['sync', 'none']", "d.toml")
    table = [
        {"point": 1, "durability": "sync", "achieved_rate": 1.0},
        {"point": 2, "durability": "none", "achieved_rate": 2.0},
    ]
    (knee,) = knees(table, modes)
    assert knee.x is None and "not numeric" in knee.note


def test_write_report_writes_the_csv_the_plots_and_the_report(tmp_path: Path) -> None:
    spec = parse_spec(SCALING + "[[plot]]\nkind = 'timeline'\nname = 'tl'\ny = 'p99_ms'", "s")
    seconds = [
        {"point": p, "repeat": 1, "actors": a, "t": float(t), "p99_ms": 10.0 * t}
        for p, a in ((1, 1), (2, 2))
        for t in range(3)
    ]
    failures = {"point 3 repeat 1: actors=4": ["I1_no_oversell: product p1 sold 3 of 2"]}
    paths = write_report(
        spec, SCALING_ROWS, tmp_path / "out", audit_failures=failures, timeline=seconds
    )
    with paths.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(SCALING_ROWS)
    assert list(rows[0])[:3] == ["point", "repeat", "actors"]
    assert rows[4]["audit_ok"] == "False"
    png, line = paths.plots
    assert png.name == "achieved_rate-p99_ms-vs-actors.png" and line.name == "tl.png"
    for path in paths.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths.timeline is not None
    with paths.timeline.open() as handle:
        assert len(list(csv.DictReader(handle))) == 6
    report = paths.report.read_text()
    assert "| point | actors | runs | offered/s | achieved/s |" in report
    assert "| 3 | 4 | 2 | 400.0 | 395.0 |" in report
    assert "point 4 (actors = 8): achieved_rate = 390.0" in report
    assert "- actors = 2 (distance" in report
    assert "I1_no_oversell: product p1 sold 3 of 2" in report
    assert f"![{png.stem}]({png.name})" in report
    assert "timeline.csv" in report


# -- the command, where it needs no Ray ----------------------------------------------------------


def test_the_command_lists_the_builtins_and_refuses_what_cannot_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from marketplace.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["experiment", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for name in builtin_names():
        assert name in listed.output
    refused = runner.invoke(app, ["experiment", "run", "autoscaling", "--quick"])
    assert refused.exit_code == 2
    assert 'via = "http" is not available yet' in refused.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep]\nshards = [1]")
    refused = runner.invoke(app, ["experiment", "run", str(bad)], env={"COLUMNS": "300"})
    assert refused.exit_code == 2
    assert "sweep.shards: unknown knob" in refused.output
