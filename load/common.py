"""What every simulated user shares in one Locust process: settings from the environment,
the catalog to pick from (Zipf-skewed), cached tokens and the shipments waiting for carriers.

Environment (all optional):

- ``LOAD_MANIFEST``: the seed manifest (default ``.marketplace/seed.json``); ``none`` ignores it.
  Without a manifest users register themselves and sellers list the catalog as they go.
- ``LOAD_WEIGHT_BROWSER`` / ``_BUYER`` / ``_SELLER`` / ``_CARRIER`` / ``_FLASH_BUYER``:
  class weights.
- ``LOAD_FLASH_PRODUCT``: the scarce product of the flash sale (else one is listed at start with
  ``LOAD_FLASH_STOCK`` units, default 20).
- ``LOAD_ORDER_LOG``: a JSON-lines file where every checkout's answer is appended.
- ``MARKETPLACE_ADMIN_EMAIL`` / ``MARKETPLACE_ADMIN_PASSWORD``: the admin (carriers are made by it).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
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
CATEGORIES = ("electronics", "books", "home", "kitchen", "garden", "sports", "toys")
WORDS = ("lamp", "kettle", "novel", "robot", "scarf", "coffee", "speaker", "rug", "kite")
DEFAULT_WEIGHTS = {"browser": 4, "buyer": 3, "seller": 1, "carrier": 1, "flash_buyer": 0}


def weight(kind: str) -> int:
    """The class weight of a kind of user (``LOAD_WEIGHT_<KIND>``, else the default)."""
    raw = os.environ.get(f"LOAD_WEIGHT_{kind.upper()}")
    return max(0, int(raw)) if raw not in (None, "") else DEFAULT_WEIGHTS[kind]


def admin_credentials() -> tuple[str, str]:
    """The admin's email and password, as ``marketplace.config.Settings`` reads them."""
    from marketplace.config import Settings

    settings = Settings()
    return settings.admin_email, settings.admin_password.get_secret_value()


def new_email(role: str) -> str:
    """A fresh, unique address for a self-registered user."""
    return f"load-{role}-{uuid.uuid4().hex[:12]}@{EMAIL_DOMAIN}"


@dataclass
class Catalog:
    """Products to pick from, most popular first, with Zipf weights; grows as sellers list."""

    ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # product id -> seller id
    lock: threading.Lock = field(default_factory=threading.Lock)
    _cum: list[float] | None = None

    def add(self, product_id: str, seller_id: str, weight_: float | None = None) -> None:
        with self.lock:
            if product_id in self.owners:
                return
            rank = len(self.ids)
            self.ids.append(product_id)
            self.weights.append(weight_ if weight_ is not None else 1 / (rank + 1) ** 1.1)
            self.owners[product_id] = seller_id
            self._cum = None

    def pick(self, rng: random.Random | None = None) -> str | None:
        """A product id, Zipf-skewed; None while the catalog is empty."""
        with self.lock:
            if not self.ids:
                return None
            if self._cum is None:
                self._cum = list(itertools.accumulate(self.weights))
            return (rng or random).choices(self.ids, cum_weights=self._cum, k=1)[0]

    def owned_by(self, seller_id: str) -> list[str]:
        with self.lock:
            return [p for p, s in self.owners.items() if s == seller_id]


@dataclass
class Market:
    """The shared state of this Locust process."""

    catalog: Catalog = field(default_factory=Catalog)
    password: str = PASSWORD
    buyer_emails: list[str] = field(default_factory=list)
    seller_emails: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=lambda: list(CATEGORIES))
    shipments: collections.deque[str] = field(default_factory=collections.deque)
    shipped: collections.deque[str] = field(default_factory=collections.deque)
    tokens: dict[str, str] = field(default_factory=dict)  # email -> bearer token
    flash_product: str | None = None
    _counters: dict[str, itertools.count[int]] = field(default_factory=dict)

    def next_email(self, role: str) -> str | None:
        """Seeded accounts round-robin (None when there are none of that role)."""
        emails = self.buyer_emails if role == "buyer" else self.seller_emails
        if not emails:
            return None
        counter = self._counters.setdefault(role, itertools.count())
        return emails[next(counter) % len(emails)]

    def log_order(self, order: dict[str, Any]) -> None:
        """Append a checkout's answer to ``LOAD_ORDER_LOG`` when set."""
        path = os.environ.get("LOAD_ORDER_LOG")
        if not path:
            return
        line = {k: order.get(k) for k in ("id", "buyer_id", "status", "failure_reason")}
        line["product_ids"] = [i["product_id"] for i in order.get("items", [])]
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def manifest_path() -> Path | None:
    """The seed manifest to use, or None."""
    raw = os.environ.get("LOAD_MANIFEST", "")
    if raw.lower() == "none":
        return None
    path = Path(raw) if raw else Path.cwd() / ".marketplace" / "seed.json"
    return path if path.is_file() else None


def build_market() -> Market:
    """The shared state, from the seed manifest when there is one."""
    market = Market(flash_product=os.environ.get("LOAD_FLASH_PRODUCT") or None)
    path = manifest_path()
    if path is None:
        return market
    from marketplace.sim.manifest import load_manifest

    manifest = load_manifest(path)
    market.password = manifest.password
    market.buyer_emails = manifest.buyer_emails
    market.seller_emails = manifest.seller_emails
    market.categories = list(manifest.categories) or market.categories
    for product in manifest.products:
        market.catalog.add(product.id, product.seller_id, product.weight)
    return market


MARKET = build_market()


def product_draft(rng: random.Random | None = None, stock: int | None = None) -> dict[str, Any]:
    """A body for ``POST /v1/products``."""
    rng = rng or random.Random()
    word = rng.choice(WORDS)
    return {
        "name": f"load {word} {uuid.uuid4().hex[:6]}",
        "description": f"a {word} listed by the load test",
        "category": rng.choice(MARKET.categories),
        "price_cents": rng.randint(200, 20_000),
        "initial_stock": stock if stock is not None else rng.randint(20, 200),
    }


def list_flash_product(host: str, stock: int) -> str:
    """List the scarce product of a flash sale (as a fresh seller) and return its id."""
    import httpx

    email = new_email("seller")
    with httpx.Client(base_url=host, timeout=30) as http:
        body = {"email": email, "password": PASSWORD, "name": "Flash", "role": "seller"}
        http.post("/v1/users", json=body).raise_for_status()
        login = http.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        token = login.raise_for_status().json()["access_token"]
        product = http.post(
            "/v1/products",
            json=product_draft(stock=stock),
            headers={"Authorization": f"Bearer {token}"},
        )
        return str(product.raise_for_status().json()["id"])
