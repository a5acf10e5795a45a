"""Experiments: TOML files that sweep runtime and workload knobs over fresh marketplaces and
write ``results.csv``, one PNG per plot and ``report.md``. See ``marketplace/sim/README.md``.

``spec`` parses and checks files into an ``ExperimentSpec``, ``knobs`` says which knob is a
runtime setting and which a workload field, ``points`` expands sweeps and repeats, ``metrics``
turns a run's records into a row, ``run`` runs the points (``run_experiment``,
``arun_experiment``), ``report`` writes the outputs; ``builtin/`` holds the built-in files.

Importing this package does not import Ray: a run does.
"""

from marketplace.sim.experiments.points import Point, expand
from marketplace.sim.experiments.report import ReportPaths, write_report
from marketplace.sim.experiments.run import (
    ExperimentError,
    ExperimentObserver,
    ExperimentResult,
    arun_experiment,
    run_experiment,
)
from marketplace.sim.experiments.spec import (
    ExperimentSpec,
    SpecError,
    builtin_names,
    load_spec,
    parse_spec,
    spec_from_mapping,
)

__all__ = [
    "ExperimentError",
    "ExperimentObserver",
    "ExperimentResult",
    "ExperimentSpec",
    "Point",
    "ReportPaths",
    "SpecError",
    "arun_experiment",
    "builtin_names",
    "expand",
    "load_spec",
    "parse_spec",
    "run_experiment",
    "spec_from_mapping",
    "write_report",
]
