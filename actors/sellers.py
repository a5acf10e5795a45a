"""SellerView: seller dashboards, kept from order snapshots (invariant I6).

Coordinators push each changed order here. The view remembers, per (order, seller), the order
version it counted, so a repeated or stale push changes nothing, and it catches up from the
orders table, so a push lost to a crash is repaired: every order at start, at each audit and every
few minutes; the orders changed in the last minute every few seconds (an index range, where a
full catch-up reads the whole orders table).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import ray

from actors.base import ActorBase
from actors.coalesce import Coalescer
from actors.protocols import SellerViewApi
from marketplace.domain.orders import Order
from marketplace.domain.sellers import Dashboard, SellerOrderFact, facts_of
from marketplace.store import sellers as store
from marketplace.store.rows import utcnow

log = logging.getLogger(__name__)
CATCH_UP_INTERVAL_S = 5.0
RECENT_WINDOW_S = 60.0  # how far back the frequent catch-up looks
FULL_CATCH_UP_EVERY = 60  # ticks: every five minutes the catch-up reads every order


class SellerView(ActorBase):
    """One actor for all dashboards (they are small: a handful of counters per seller)."""

    SOURCE = "marketplace/sellers"

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        self.facts: dict[tuple[str, str], SellerOrderFact] = {}
        self.dashboards: dict[str, Dashboard] = {}
        self.applied = 0
        self._arrived: dict[tuple[str, int], Order] = {}
        self._applier: Coalescer[tuple[str, int], int] = Coalescer(self._apply_arrived)
        super().__init__(settings, index, count)

    async def load(self) -> None:
        for fact, applied_at in await store.load_facts(self.database):
            self._count(fact, applied_at)

    async def started(self) -> None:
        await self._catch_up()
        if self.engine is not None:
            self._ticker = asyncio.get_running_loop().create_task(self._catch_up_forever())

    async def apply(self, order: Order) -> int:
        """Count an order's newest snapshot; older or repeated ones are ignored.

        Returns how many (order, seller) facts it changed. Snapshots that arrive while one
        batch is being written are applied together, in one write, by the next.
        """
        await self.loaded()
        key = (order.id, order.version)
        self._arrived.setdefault(key, order)
        return await self._applier.get(key) or 0

    async def catch_up(self) -> int:
        """Apply every order whose version the view has not seen; returns how many facts."""
        await self.loaded()
        return await self._catch_up()

    async def dashboard(self, seller_id: str) -> Dashboard:
        """The seller's figures as of the newest snapshot applied."""
        await self.loaded()
        return self.dashboards.get(seller_id) or Dashboard(seller_id=seller_id)

    async def snapshot(self) -> dict[str, Any]:
        """Dashboards and facts as held in memory (audit)."""
        await self.loaded()
        return {"dashboards": dict(self.dashboards), "facts": list(self.facts.values())}

    async def _apply_arrived(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        snapshot = [self._arrived.pop(key) for key in keys if key in self._arrived]
        fresh = Counter((f.order_id, f.order_version) for f in await self._apply(snapshot))
        return {key: fresh[key] for key in keys}

    async def _apply(self, snapshot: list[Order]) -> list[SellerOrderFact]:
        """Count the facts of ``snapshot`` that are newer than what the view holds."""
        async with self.locks.hold("view"):
            # The newest snapshot of each (order, seller) wins, whatever order they came in.
            newest: dict[tuple[str, str], SellerOrderFact] = {}
            for order in snapshot:
                for fact in facts_of(order):
                    key = (fact.order_id, fact.seller_id)
                    known = newest.get(key) or self.facts.get(key)
                    if known is None or known.order_version < fact.order_version:
                        newest[key] = fact
            fresh = list(newest.values())
            if not fresh:
                return []
            now = utcnow()
            await self.writer.write(store.applied(fresh, now))
            for fact in fresh:
                self._count(fact, now)
            return fresh

    def _count(self, fact: SellerOrderFact, at: datetime) -> None:
        key = (fact.order_id, fact.seller_id)
        dashboard = self.dashboards.setdefault(fact.seller_id, Dashboard(seller_id=fact.seller_id))
        old = self.facts.get(key)
        if old is not None:
            dashboard.add(old, -1)
        dashboard.add(fact, +1)
        self.facts[key] = fact
        self.applied += 1
        dashboard.as_of = at
        dashboard.as_of_version = self.applied

    async def _catch_up(self, changed_since: datetime | None = None) -> int:
        """Apply the orders whose facts the store lacks or holds older; with ``changed_since``
        only the orders updated since then."""
        if self.engine is None:
            return 0
        behind = await store.orders_behind(self.engine, changed_since)
        return len(await self._apply(behind))

    async def _catch_up_forever(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(CATCH_UP_INTERVAL_S)
            ticks += 1
            full = ticks % FULL_CATCH_UP_EVERY == 0
            recent = utcnow() - timedelta(seconds=RECENT_WINDOW_S)
            try:
                await self._catch_up(None if full else recent)
            except Exception:
                log.exception("seller view catch-up failed; will retry")


_ANSWERS: type[SellerViewApi] = SellerView  # mypy checks the class against its protocol
SellerViewActor = ray.remote(SellerView)
