"""Unit tests run without Ray and carry the ``unit`` mark (``pytest -m unit`` selects them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import pytest
import ray

from marketplace.store import migrate

HERE = Path(__file__).parent


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database in the test's own folder (actors run in process on it)."""
    url = f"sqlite:///{tmp_path / 'marketplace.db'}"
    await migrate.upgrade_async(url)
    return url


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError("unit tests must not start Ray; this belongs in tests/integration")

    monkeypatch.setattr(ray, "init", refuse)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a unit test without the mark: ``-m unit`` would silently leave it out."""
    unmarked = [
        item.nodeid
        for item in items
        if HERE in item.path.parents and item.get_closest_marker("unit") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"tests in tests/unit must be marked unit: {unmarked}")
