"""The chaos campaign's named loads: a scenario gives preset, rate and duration; options given
on the command line replace one part; an unknown name is refused naming the known ones."""

from __future__ import annotations

import pytest

from marketplace.cli.chaos import SCENARIOS, scenario_load
from marketplace.cli.output import CliError
from marketplace.sim.presets import PRESETS

pytestmark = pytest.mark.unit


def test_a_scenario_names_a_load_and_options_change_one_part() -> None:
    assert scenario_load("smoke", None, None, None) == ("om", 30.0, 15.0)
    assert scenario_load("flash_sale", None, None, None) == ("flash", 60.0, 20.0)
    assert scenario_load("smoke", None, 20.0, 5.0) == ("om", 20.0, 5.0)
    assert scenario_load("steady", "browse", None, None) == ("browse", 60.0, 30.0)
    assert all(load["preset"] in PRESETS for load in SCENARIOS.values())


def test_an_unknown_scenario_is_refused() -> None:
    with pytest.raises(CliError, match="unknown scenario 'soak'; known: smoke, steady, flash_sale"):
        scenario_load("soak", None, None, None)
