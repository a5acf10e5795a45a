"""What a Ray node's metrics export looks like for the marketplace's metrics, for unit tests of
the code that reads it (``actors.scrape``): the format of Ray 2.60's OpenTelemetry exporter,
copied from a live export (``ray start --metrics-export-port``), one series per process."""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram, Metric

from actors import metrics as actor_metrics
from serve_app import metrics as gateway_metrics

# The labels Ray adds to every series a process records.
PROCESS = (
    'Component="core_worker",NodeAddress="192.0.2.2",SessionName="session_x",Version="2.60.0",'
    'WorkerId="{worker}"'
)
SCOPE = (
    'otel_scope_name="ray._private.telemetry.open_telemetry_metric_recorder",'
    'otel_scope_schema_url="",otel_scope_version=""'
)


def exported_name(metric: Metric) -> str:
    """The family name the export gives ``metric``."""
    name = "ray_" + metric.info["name"]
    return name + "_total" if isinstance(metric, Counter) else name


def kind(metric: Metric) -> str:
    """The ``# TYPE`` of ``metric`` in the export."""
    if isinstance(metric, Counter):
        return "counter"
    if isinstance(metric, Histogram):
        return "histogram"
    assert isinstance(metric, Gauge)
    return "gauge"


def exported_families() -> dict[str, str]:
    """Every family the gateway and the actors record -> its type, as exported."""
    return {exported_name(m): kind(m) for m in (*gateway_metrics.METRICS, *actor_metrics.METRICS)}


def _labels(worker: str, tags: dict[str, str], extra: str = "") -> str:
    own = ",".join(f'{key}="{value}"' for key, value in sorted(tags.items()))
    return "{" + ",".join(p for p in (PROCESS.format(worker=worker), extra, SCOPE, own) if p) + "}"


def ray_export(samples: list[tuple[Metric, str, dict[str, str]]], value: float = 1.0) -> str:
    """An export holding, for each ``(metric, worker, tags)``, one observation of ``value``
    recorded by process ``worker``."""
    lines: list[str] = []
    declared: set[str] = set()
    for metric, worker, tags in samples:
        name = exported_name(metric)
        if name not in declared:
            declared.add(name)
            lines += [
                f"# HELP {name} {metric.info['description']}",
                f"# TYPE {name} {kind(metric)}",
            ]
        if isinstance(metric, Histogram):
            for bound in [*metric.boundaries, "+Inf"]:
                within = bound == "+Inf" or value <= float(bound)
                le = f'le="{bound if bound == "+Inf" else float(bound)}"'
                lines.append(f"{name}_bucket{_labels(worker, tags, le)} {1.0 if within else 0.0}")
            lines.append(f"{name}_count{_labels(worker, tags)} 1.0")
            lines.append(f"{name}_sum{_labels(worker, tags)} {value}")
        else:
            lines.append(f"{name}{_labels(worker, tags)} {value}")
    return "\n".join(lines) + "\n"
