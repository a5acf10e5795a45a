"""Load scenarios: the TOML files under ``load/scenarios/``, read and checked, and their SLOs.

A scenario (``load/scenarios/<name>.toml``, or a path to such a file) names the user classes and
their weights, a load shape with its parameters, and the SLOs: an error rate and per-endpoint
p95/p99 in ms (endpoint = Locust's ``METHOD /path/{param}`` name, or ``Aggregated``)::

    description = "..."
    shape = "steady"                 # a shape of load/shapes.py
    users = { browser = 4, buyer = 3, seller = 1, carrier = 1 }   # USER_KINDS, weights
    flash_stock = 20                 # units of the flash sale's product (flash buyers only)

    [shape_params]                   # over the shape's defaults
    users = 10

    [slo]
    error_rate = 0.0

    [slo.endpoints."POST /v1/orders"]
    p95_ms = 1500
    p99_ms = 3000

A bad file is refused with ``typer.BadParameter``, which the command prints as a usage error.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from load.environment import DEFAULT_FLASH_STOCK, USER_KINDS
from load.shapes import DEFAULTS, parameters

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"


@dataclass
class Slo:
    """One objective: ``endpoint`` ``metric`` (p95_ms, p99_ms or error_rate) at most ``limit``.

    ``value`` is what a run measured (``load.report.judge`` fills it); None: no data.
    """

    endpoint: str
    metric: str
    limit: float
    value: float | None = None

    @property
    def ok(self) -> bool:
        """Measured and within the limit (no data is a breach)."""
        return self.value is not None and self.value <= self.limit

    def describe(self) -> str:
        """One line for a breach: ``GET /v1/products p99 300 ms > 250 ms``."""
        unit = "" if self.metric == "error_rate" else " ms"
        value = "no data" if self.value is None else f"{self.value:g}{unit}"
        return f"{self.endpoint} {self.metric.removesuffix('_ms')} {value} > {self.limit:g}{unit}"


@dataclass
class Scenario:
    """A scenario file, read: who comes, in what shape, judged by which SLOs."""

    name: str
    description: str
    shape: str
    shape_params: dict[str, Any]
    weights: dict[str, int]
    slos: list[Slo] = field(default_factory=list)
    flash_stock: int = DEFAULT_FLASH_STOCK

    @property
    def duration_s(self) -> float:
        """How long the shape runs, in seconds."""
        return float(parameters(self.shape, self.shape_params)["duration_s"])


def scenario_names() -> list[str]:
    """The scenarios shipped in ``load/scenarios``."""
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by name (``load/scenarios/<name>.toml``) or by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SCENARIOS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise typer.BadParameter(
            f"no scenario {name_or_path!r}; known: {', '.join(scenario_names())}",
            param_hint="--scenario",
        )
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    weights = {kind: int(data.get("users", {}).get(kind, 0)) for kind in USER_KINDS}
    unknown = set(data.get("users", {})) - set(USER_KINDS)
    if unknown or not any(weights.values()):
        raise typer.BadParameter(f"{path}: users must weigh some of {', '.join(USER_KINDS)}")
    slo_table = data.get("slo", {})
    slos = [Slo("Aggregated", "error_rate", float(slo_table.get("error_rate", 0.0)))]
    for endpoint, limits in slo_table.get("endpoints", {}).items():
        for metric in ("p95_ms", "p99_ms"):
            if metric in limits:
                slos.append(Slo(endpoint, metric, float(limits[metric])))
    shape = str(data.get("shape", "steady"))
    if shape not in DEFAULTS:
        known = ", ".join(DEFAULTS)
        raise typer.BadParameter(f"{path}: unknown shape {shape!r}; known: {known}")
    return Scenario(
        name=path.stem,
        description=str(data.get("description", "")),
        shape=shape,
        shape_params=dict(data.get("shape_params", {})),
        weights=weights,
        slos=slos,
        flash_stock=int(data.get("flash_stock", DEFAULT_FLASH_STOCK)),
    )
