"""The Grafana dashboard and the alert rules: generated files current, every query valid PromQL
over metric names that ``cluster/observability/metric_names.py`` lists and the exporters
publish, and the rules checked and unit-tested with promtool (each alert fires when it should,
stays silent when it should not, and its tests catch a broken rule)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors import metrics as actor_metrics
from actors import scrape as scrape_module
from cluster.observability import alerts, dashboard, generate, metric_names, queries
from serve_app import metrics as gateway_metrics
from tests.unit.ray_exports import exported_families, ray_export

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        # A missing tool fails rather than skips, as a missing service does (README, Tests).
        pytest.fail("promtool is not installed: run tests/ensure_promtool.sh (make test does)")
    return path


def committed() -> dict[str, str]:
    return queries.committed_queries(generate.DASHBOARD, generate.RULES)


def test_generated_files_are_current() -> None:
    assert generate.stale() == [], "run python -m cluster.observability.generate"


def test_a_change_to_the_sources_makes_the_generated_files_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "GROUP", "renamed")
    monkeypatch.setattr(dashboard, "TITLE", "Renamed")
    assert set(generate.stale()) == {generate.RULES, generate.PROMETHEUS_RULE, generate.DASHBOARD}


def test_the_prometheus_rule_holds_the_rules_file() -> None:
    rules = yaml.safe_load(generate.RULES.read_text(encoding="utf-8"))
    manifest = yaml.safe_load(generate.PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"] == rules
    names = {rule["alert"] for rule in rules["groups"][0]["rules"]}
    assert names == {alert.name for alert in alerts.ALERTS}


def test_every_query_parses_and_uses_only_listed_metrics() -> None:
    found = committed()
    assert sum(where.startswith("dashboard") for where in found) >= 10
    assert sum(where.startswith("rule") for where in found) == len(alerts.ALERTS)
    known = metric_names.known_series()
    used: set[str] = set()
    for where, expr in found.items():
        names = queries.metric_names(expr)
        assert names, (where, expr)
        assert names <= known.keys(), (where, names - known.keys())
        used |= names
    # Every listed metric is queried somewhere: the list is the dashboard's and rules' own.
    assert {known[name] for name in used} == set(metric_names.ALL_METRICS)


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(marketplace_orders_total[5m])",  # unclosed
        'rate(marketplace_orders_total{status="x"}[5 minutes])',
        "marketplace_orders_total >",
    ],
)
def test_invalid_promql_is_refused(expr: str) -> None:
    with pytest.raises(ValueError):
        queries.parse(expr)


def test_names_come_out_of_nested_queries() -> None:
    expr = (
        "count_over_time((sum by (Name) (ray_actors) > 0)[15m:1m])"
        " / on() group_left sum(rate(marketplace_http_requests_total[$__rate_interval]))"
    )
    assert queries.metric_names(expr) == {"ray_actors", "marketplace_http_requests_total"}
    with pytest.raises(ValueError, match="without a metric name"):
        queries.metric_names('{__name__=~"marketplace_.*"}')


def test_the_listed_names_are_the_ones_the_marketplace_records() -> None:
    listed = {m.name: str(m.kind) for m in metric_names.APP_METRICS}
    assert listed == exported_families()


def test_the_ray_names_are_the_ones_rays_own_dashboards_query() -> None:
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.origin is not None
    panels = Path(spec.origin).parent / "dashboard" / "modules" / "metrics" / "dashboards"
    text = "\n".join(p.read_text(encoding="utf-8") for p in panels.glob("*_panels.py"))
    for metric in (metric_names.RAY_ACTORS, metric_names.SERVE_REPLICAS_HEALTHY):
        assert f"{metric.name}{{" in text or f"{metric.name})" in text, metric.name
    assert 'ray_actors{{Source="gcs"' in text  # the label values the rules and panels select


def test_the_dashboard_queries_its_datasource_variable() -> None:
    board: dict[str, Any] = json.loads(generate.DASHBOARD.read_text(encoding="utf-8"))
    (variable,) = board["templating"]["list"]
    assert (variable["type"], variable["query"], variable["name"]) == (
        "datasource",
        "prometheus",
        "datasource",
    )
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == "${datasource}" for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"] for p in panels)
    for wanted in ("Requests", "Errors", "p50", "p95", "p99", "Checkouts", "Relay", "replicas"):
        assert wanted in titles


def test_every_alert_has_a_case_that_fires_and_one_that_stays_silent() -> None:
    for alert in alerts.ALERTS:
        cases = [case for case in alerts.CASES if case.alert == alert.name]
        assert any(case.fires_at for case in cases), alert.name
        assert any(case.silent_at for case in cases), alert.name


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", str(generate.RULES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "test", "rules", generate.RULE_TESTS.name],
        capture_output=True,
        text=True,
        cwd=generate.RULE_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _test_with(tmp_path: Path, promtool: str, name: str, expr: str) -> str:
    """promtool's verdict on the committed tests with alert ``name``'s expression replaced."""
    tmp_path.mkdir()
    rules = yaml.safe_load(generate.RULES.read_text(encoding="utf-8"))
    for rule in rules["groups"][0]["rules"]:
        if rule["alert"] == name:
            rule["expr"] = expr
    (tmp_path / alerts.RULE_FILE).write_text(yaml.safe_dump(rules), encoding="utf-8")
    shutil.copy(generate.RULE_TESTS, tmp_path / generate.RULE_TESTS.name)
    done = subprocess.run(
        [promtool, "test", "rules", generate.RULE_TESTS.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode != 0, f"the tests of {name} pass with expr {expr!r}"
    return done.stdout + done.stderr


@pytest.mark.parametrize("alert", [a.name for a in alerts.ALERTS])
def test_each_alerts_tests_catch_a_rule_that_never_or_always_fires(
    tmp_path: Path, promtool: str, alert: str
) -> None:
    never = _test_with(tmp_path / "never", promtool, alert, "vector(1) > 2")
    assert f"alertname: {alert}" in never
    original = next(a.expr for a in alerts.ALERTS if a.name == alert)
    # The alert's own query without its threshold: every input series makes it fire.
    always = original.rsplit(" ", 2)[0] + " >= 0"
    if alert == "RayActorRestartLoop":
        always = original.replace(" > 0)", " >= 0)")  # a non-restarting minute counts too
    assert f"alertname: {alert}" in _test_with(tmp_path / "always", promtool, alert, always)


def test_the_summed_scrape_declares_every_queried_family_and_lints_clean(promtool: str) -> None:
    # A node's export with a sample of every family from two processes, summed as GET /metrics
    # sums it.
    export = ray_export(
        [
            (metric, worker, {key: "x" for key in metric.info["tag_keys"]})
            for metric in (*gateway_metrics.METRICS, *actor_metrics.METRICS)
            for worker in ("w1", "w2")
        ]
    )
    scrape = scrape_module.exposition(scrape_module.summed([export], "x")).decode()
    declared = queries.declared_types(scrape)
    queried = {m for m in queries.queried_metrics(committed()) if m.exporter == "marketplace"}
    assert queried == set(metric_names.APP_METRICS)
    for metric in queried:
        assert declared.get(metric.name) == metric.kind, metric.name
    lints = queries.promtool_check_metrics(promtool, scrape)
    assert [line for line in lints if line not in queries.TOLERATED_METRIC_LINTS] == []


def test_promtool_check_metrics_reports_a_badly_named_counter(promtool: str) -> None:
    lints = queries.promtool_check_metrics(
        promtool, "# HELP jobs Jobs.\n# TYPE jobs counter\njobs 1\n"
    )
    assert any("_total" in line for line in lints), lints
