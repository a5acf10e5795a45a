"""SellerView: seller dashboards, kept from order snapshots (invariant I6).

Coordinators push each changed order here. The view knows, per (order, seller), the order
version it counted, so a repeated or stale push changes nothing, and it catches up from the
orders table, so a push lost to a crash is repaired: every order at start, at each audit and every
few minutes; the orders changed in the last minute every few seconds (an index range, where a
full catch-up reads the whole orders table).

What it counted is in the store (``seller_order_facts``) before the dashboards change, so with
sync durability memory keeps the facts of only the ``seller_cache_size`` orders used last, and
reads the others' back before counting a newer version; the dashboards themselves are per-seller
sums, loaded with one GROUP BY. With async or none durability memory keeps every fact.
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
from actors.lru import LruCache
from actors.protocols import SellerViewApi
from marketplace.domain.orders import Order, OrderStatus
from marketplace.domain.sellers import Dashboard, SellerOrderFact, facts_of
from marketplace.store import sellers as store
from marketplace.store.rows import utcnow
from marketplace.store.writer import Writer

log = logging.getLogger(__name__)
CATCH_UP_INTERVAL_S = 5.0
RECENT_WINDOW_S = 60.0  # how far back the frequent catch-up looks
FULL_CATCH_UP_EVERY = 60  # ticks: every five minutes the catch-up reads every order


class SellerView(ActorBase):
    """One actor for all dashboards (they are small: a handful of counters per seller)."""

    SOURCE = "marketplace/sellers"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        self.dashboards: dict[str, Dashboard] = {}
        self.applied = 0
        self._arrived: dict[tuple[str, int], Order] = {}
        self._applier: Coalescer[tuple[str, int], int] = Coalescer(self._apply_arrived)
        # What the dashboards count for the orders whose last write had no sure answer: the
        # store may hold the newer facts, which the dashboards do not count (see _apply).
        self._unsure: dict[str, dict[str, SellerOrderFact]] = {}
        # Whether load() read every fact (see _knows_every_order).
        self._loaded_all = True
        super().__init__(settings, index, count, writer=writer)
        # order id -> seller id -> the fact counted: every order's, or the most recently used
        # (``store_first``)
        self.facts: LruCache[str, dict[str, SellerOrderFact]] = LruCache(
            self.settings.seller_cache_size if self.store_first else None
        )

    async def load(self) -> None:
        boards, applied = await store.dashboards(self.database)
        # Every fact when the cache holds them all, so that counting a new order asks the
        # store nothing; past that none: each order's are read back when it changes.
        fits = not self.store_first or (
            await store.order_count(self.database) <= self.settings.seller_cache_size
        )
        loaded = [fact for fact, _ in await store.load_facts(self.database)] if fits else []
        # Filled only here, after every read: a load retried after an outage starts afresh.
        self.dashboards = {board.seller_id: board for board in boards}
        self.applied = applied
        for fact in loaded:
            self.facts.setdefault(fact.order_id, {})[fact.seller_id] = fact
        self._loaded_all = fits

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
        """Dashboards, and every fact counted (audit): as memory holds it, and, for the orders
        memory let go of (``store_first``), as the store does."""
        await self.loaded()
        async with self.locks.hold("view"):
            held = [fact for facts in self.facts.values() for fact in facts.values()]
            if self.store_first and not self._knows_every_order():
                held_orders = {fact.order_id for fact in held}
                async with self.database.connect() as conn:
                    stored = await store.load_all(conn)
                held += [fact for fact in stored if fact.order_id not in held_orders]
            return {"dashboards": dict(self.dashboards), "facts": held}

    async def _apply_arrived(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        snapshot = [self._arrived.pop(key) for key in keys if key in self._arrived]
        fresh = Counter((f.order_id, f.order_version) for f in await self._apply(snapshot))
        return {key: fresh[key] for key in keys}

    async def _apply(self, snapshot: list[Order]) -> list[SellerOrderFact]:
        """Count the facts of ``snapshot`` that are newer than what the view holds."""
        async with self.locks.hold("view"):
            counted = await self._counted({order.id for order in snapshot})
            # The newest snapshot of each (order, seller) wins, whatever order they came in.
            newest: dict[tuple[str, str], SellerOrderFact] = {}
            for order in snapshot:
                for fact in facts_of(order):
                    key = (fact.order_id, fact.seller_id)
                    known = newest.get(key) or counted[fact.order_id].get(fact.seller_id)
                    if known is None or known.order_version < fact.order_version:
                        newest[key] = fact
            fresh = list(newest.values())
            if not fresh:
                return []
            changed = {fact.order_id for fact in fresh}
            now = utcnow()
            try:
                await self.writer.write(store.applied(fresh, now))
            except Exception:
                # The facts may have committed with the answer lost: memory must not let go
                # of what the dashboards count for these orders, or a read-back would take
                # the store's newer facts for counted ones.
                self._unsure.update((order_id, counted[order_id]) for order_id in changed)
                raise
            for fact in fresh:
                self._count(fact, counted[fact.order_id].get(fact.seller_id), now)
                counted[fact.order_id] = {**counted[fact.order_id], fact.seller_id: fact}
            for order_id in changed:
                self._unsure.pop(order_id, None)
                self.facts[order_id] = counted[order_id]
            self.metrics.dashboard_lags(confirmation_lags(snapshot, changed, now))
            return fresh

    async def _counted(self, order_ids: set[str]) -> dict[str, dict[str, SellerOrderFact]]:
        """The facts the dashboards count for each of ``order_ids`` (by seller; empty for an
        order not counted yet): memory's, or, for an order memory let go of, the store's,
        then kept (under the view's lock)."""
        counted: dict[str, dict[str, SellerOrderFact]] = {}
        missing: list[str] = []
        for order_id in order_ids:
            facts = self._unsure.get(order_id)
            if facts is None:
                facts = self.facts.get(order_id)
            if facts is not None:
                counted[order_id] = facts
            else:
                counted[order_id] = {}
                missing.append(order_id)
        if missing and self.store_first and not self._knows_every_order():
            for fact in await store.load_orders(self.database, missing):
                counted[fact.order_id] = {**counted[fact.order_id], fact.seller_id: fact}
            for order_id in missing:
                if counted[order_id]:
                    self.facts[order_id] = counted[order_id]
        return counted

    def _knows_every_order(self) -> bool:
        """Whether memory holds the facts of every order counted (loaded all of them, and let
        none go since), so that an order it holds none of has none."""
        return self._loaded_all and self.facts.dropped == 0

    def _count(self, fact: SellerOrderFact, old: SellerOrderFact | None, at: datetime) -> None:
        """Count ``fact`` on its seller's dashboard in place of ``old``, what was counted."""
        dashboard = self.dashboards.setdefault(fact.seller_id, Dashboard(seller_id=fact.seller_id))
        if old is not None:
            dashboard.add(old, -1)
        dashboard.add(fact, +1)
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


def confirmation_lags(snapshot: list[Order], changed: set[str], now: datetime) -> list[float]:
    """Seconds from each confirmation in ``snapshot`` that the dashboards now count (its order
    among ``changed``) to ``now``: how far behind the dashboards were (two processes' clocks)."""
    return [
        max(0.0, (now - order.updated_at).total_seconds())
        for order in snapshot
        if order.status is OrderStatus.CONFIRMED and order.id in changed
    ]


_ANSWERS: type[SellerViewApi] = SellerView  # mypy checks the class against its protocol
SellerViewActor = ray.remote(SellerView)
