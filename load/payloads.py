"""What simulated users send: their password, card and address, fresh e-mail addresses and
product listings."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

PASSWORD = "load-test-password"
EMAIL_DOMAIN = "load.marketplace.test"
CARD = "tok_visa"
ADDRESS = {
    "name": "Load Tester",
    "street": "1 Locust Lane",
    "city": "Springfield",
    "zip": "12345",
    "country": "US",
}
WORDS = ("lamp", "kettle", "novel", "robot", "scarf", "coffee", "speaker", "rug", "kite")


def new_email(role: str) -> str:
    """A fresh, unique address for a self-registered user."""
    return f"load-{role}-{uuid.uuid4().hex[:12]}@{EMAIL_DOMAIN}"


def product_draft(
    categories: Sequence[str], rng: random.Random | None = None, stock: int | None = None
) -> dict[str, Any]:
    """A body for ``POST /v1/products`` in one of ``categories``."""
    rng = rng or random.Random()
    word = rng.choice(WORDS)
    return {
        "name": f"load {word} {uuid.uuid4().hex[:6]}",
        "description": f"a {word} listed by the load test",
        "category": rng.choice(categories),
        "price_cents": rng.randint(200, 20_000),
        "initial_stock": stock if stock is not None else rng.randint(20, 200),
    }
