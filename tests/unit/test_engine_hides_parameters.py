"""A failing statement's error names the SQL, never the values bound to it (card tokens,
addresses and password hashes would otherwise reach logs and tracebacks). Real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from marketplace.store.engine import create_engine

pytestmark = pytest.mark.unit

SECRET = "tok_visa_4242_secret_value"


async def test_errors_hide_the_bound_values(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'hide.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE cards (token TEXT PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO cards VALUES (:t)"), {"t": SECRET})
        with pytest.raises(IntegrityError) as caught:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO cards VALUES (:t)"), {"t": SECRET})
        assert "INSERT INTO cards" in str(caught.value)
        assert SECRET not in str(caught.value)
    finally:
        await engine.dispose()
