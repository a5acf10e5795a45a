"""The PromQL in the dashboard and the rules: parsed with ``promql-parser``, metric names out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from cluster.observability.metric_names import Metric, known_series

# Grafana's variables are not PromQL; each stands for a value of the same kind.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def parse(expr: str) -> promql_parser.Expr:
    """The expression's syntax tree, Grafana variables replaced; ValueError when it is invalid."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects; ValueError for a selector without one."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if not node.name:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            names.add(node.name)

    promql_parser.walk(parse(expr), visit)
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard's panels (rows' panels included)."""
    found: list[str] = []
    for panel in dashboard.get("panels", []):
        found += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        found += dashboard_queries({"panels": panel.get("panels", [])})
    return found


def rule_queries(rules: dict[str, Any]) -> list[str]:
    """Every expression of a rules document (``groups``: a rules file or a PrometheusRule spec)."""
    return [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def committed_queries(dashboard_json: Path, rules_yaml: Path) -> dict[str, str]:
    """``where -> expr`` for every query of the committed dashboard and rules files."""
    dashboard = json.loads(dashboard_json.read_text(encoding="utf-8"))
    rules = yaml.safe_load(rules_yaml.read_text(encoding="utf-8"))
    found = {f"dashboard #{i}": e for i, e in enumerate(dashboard_queries(dashboard))}
    found |= {f"rule #{i}": e for i, e in enumerate(rule_queries(rules))}
    return found


def queried_metrics(found: dict[str, str]) -> set[Metric]:
    """The listed metric families that these queries select (unlisted names are left out)."""
    known = known_series()
    return {known[name] for expr in found.values() for name in metric_names(expr) if name in known}


def declared_types(exposition: str) -> dict[str, str]:
    """``name -> type`` from the ``# TYPE`` lines of a Prometheus text exposition."""
    types = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind.strip()
    return types


def promtool_check_metrics(promtool: str, exposition: str) -> list[str]:
    """What ``promtool check metrics`` says of an exposition (its lint lines; empty: clean).

    promtool exits non-zero with a line per problem; a failed run with no line is one too.
    """
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0 and not lines:
        lines = [f"promtool check metrics exited {done.returncode}"]
    return lines


# promtool lint lines accepted in the gateway's scrape, each with its reason. None today.
TOLERATED_METRIC_LINTS: frozenset[str] = frozenset()
