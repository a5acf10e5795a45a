"""``marketplace events tail``: the parts that need no broker."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from marketplace.cli.events import _masked, events_app

pytestmark = pytest.mark.unit


def test_tail_is_a_subcommand_with_its_options() -> None:
    result = CliRunner().invoke(events_app, ["tail", "--help"])
    assert result.exit_code == 0
    for option in ("--type", "--amqp-url", "--json", "--limit"):
        assert option in result.output


def test_tail_without_a_broker_says_how_to_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETPLACE_AMQP_URL", raising=False)
    result = CliRunner().invoke(events_app, ["tail"])
    assert result.exit_code == 2
    assert "MARKETPLACE_AMQP_URL" in result.output


def test_passwords_are_masked() -> None:
    assert _masked("amqp://guest:secret@rabbit:5672/") == "amqp://guest:***@rabbit:5672/"
    assert _masked("amqp://rabbit/") == "amqp://rabbit/"
