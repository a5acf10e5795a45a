"""The ``marketplace`` command: ``up``, ``seed``, ``audit``, ``top``, ``trace``, ``load``,
``simulate``, ``chaos``, ``experiment``, ``faults`` and ``events``.

One module per command (``up.py``, ``seed.py``, ``audit.py``, ``top.py``, ``trace.py``,
``simulate.py``, ``chaos.py``, ``experiment.py``, ``faults.py``, ``events.py``; ``load`` is
``load/cli.py``);
``runtime_state.py`` is what ``up`` leaves in ``.marketplace/`` and ``session.py`` how ``seed``
and ``audit`` join it or start their own marketplace.

``up`` runs a marketplace in the foreground (Ray, schema, actors) and records where it is in
``.marketplace/runtime.json``; ``seed`` and ``audit`` join that one when it runs, or else start
an in-process marketplace on the configured database for the length of the command.

Ray and the actors are imported inside the functions that need them, so ``--help`` is quick.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
from rich.logging import RichHandler

# Before anything imports Ray (it is imported lazily, so this still takes effect): under
# `uv run`, Ray's uv hook would start every worker through uv with the working directory
# shipped as a package.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

from load.cli import load_command
from marketplace.cli.audit import audit
from marketplace.cli.chaos import chaos_command
from marketplace.cli.events import events_app
from marketplace.cli.experiment import experiment_app
from marketplace.cli.faults import faults_app
from marketplace.cli.output import err_console
from marketplace.cli.seed import seed_command
from marketplace.cli.simulate import simulate_command
from marketplace.cli.top import top
from marketplace.cli.trace import trace_command
from marketplace.cli.up import up

app = typer.Typer(
    name="marketplace",
    help="Run, seed, audit and load-test the actor-model marketplace, and tail its events.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(events_app, name="events")
app.add_typer(experiment_app, name="experiment")
app.add_typer(faults_app, name="faults")


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the runtime does (INFO level).")
    ] = False,
) -> None:
    """Run, seed and audit the actor-model marketplace.

    Settings come from MARKETPLACE_* environment variables (see DESIGN.md section 8); state
    files live in ./.marketplace/.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


app.command()(up)
app.command("seed")(seed_command)
app.command()(audit)
app.command()(top)
app.command("trace")(trace_command)
app.command("load")(load_command)
app.command("simulate")(simulate_command)
app.command("chaos")(chaos_command)
