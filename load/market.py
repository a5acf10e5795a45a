"""What every simulated user of one Locust process shares: the catalog to pick from
(Zipf-skewed), the seeded accounts, cached tokens and the shipments waiting for carriers.

``MARKET`` is built once per process, from the seed manifest when there is one
(``LOAD_MANIFEST``, see ``load/environment.py``).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from load.environment import manifest_path, order_log_path
from load.payloads import PASSWORD

CATEGORIES = ("electronics", "books", "home", "kitchen", "garden", "sports", "toys")


@dataclass
class Catalog:
    """Products to pick from, most popular first, with Zipf weights; grows as sellers list."""

    ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # product id -> seller id
    lock: threading.Lock = field(default_factory=threading.Lock)
    _cum: list[float] | None = None

    def add(self, product_id: str, seller_id: str, weight_: float | None = None) -> None:
        """Add a product (once), by default less popular than every one before it."""
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
        """The products of one seller."""
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
        path = order_log_path()
        if not path:
            return
        line = {k: order.get(k) for k in ("id", "buyer_id", "status", "failure_reason")}
        line["product_ids"] = [i["product_id"] for i in order.get("items", [])]
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


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
