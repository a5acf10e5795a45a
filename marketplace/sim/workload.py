"""A preset's activity mix over a market, as one deterministic stream of operations.

``Workload(market, preset, rng)`` draws activities by the preset's mix and expands each with the
behaviours (a customer session becomes several operations, the others one each).
``next_op(t)`` gives the next operation for time ``t`` seconds into the run, starting a new
activity when the last one is used up; ``stream(times)`` maps it over an arrival schedule.
Sessions are flattened in order: the open loop starts each of their operations at its own
arrival time (a session-at-a-time runner is a later layer).
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Iterable, Iterator

from marketplace.sim.behaviours import (
    ProductPicker,
    SellerAction,
    carrier_action,
    carrier_ids,
    customer_session,
    seller_action,
)
from marketplace.sim.market import SyntheticMarket
from marketplace.sim.operations import Operation
from marketplace.sim.presets import Activity, Preset

_SELLER_ACTIONS = {
    Activity.DASHBOARD: SellerAction.DASHBOARD,
    Activity.PRICE_UPDATE: SellerAction.PRICE_UPDATE,
    Activity.PRODUCT_UPDATE: SellerAction.PRODUCT_UPDATE,
    Activity.RESTOCK: SellerAction.RESTOCK,
}


class Workload:
    """The operations of ``preset`` over ``market``, every draw from ``rng``."""

    def __init__(self, market: SyntheticMarket, preset: Preset, rng: random.Random) -> None:
        self.market = market
        self.preset = preset
        self.rng = rng
        self.picker = ProductPicker(market, preset.zipf, preset.flash)
        self.carriers = carrier_ids(market, preset.carriers)
        shares = preset.shares()
        self._kinds = list(shares)
        self._cum = list(itertools.accumulate(shares.values()))
        self._pending: deque[Operation] = deque()
        if Activity.DELIVERY in shares and not self.carriers:
            raise ValueError(f"preset {preset.name!r} has deliveries but no carriers")

    def activity(self, t: float = 0.0) -> tuple[Activity, list[Operation]]:
        """The next activity drawn from the mix, and its operations, for time ``t``."""
        kind = self.rng.choices(self._kinds, cum_weights=self._cum, k=1)[0]
        if kind is Activity.SESSION:
            shape = self.preset.session
            return kind, customer_session(self.rng, self.market, self.picker, shape, t)
        if kind is Activity.DELIVERY:
            return kind, [carrier_action(self.rng, self.carriers)]
        action = _SELLER_ACTIONS[kind]
        return kind, [seller_action(self.rng, self.market, self.picker, action, t)]

    def next_op(self, t: float = 0.0) -> Operation:
        """The next operation, for time ``t`` seconds into the run."""
        if not self._pending:
            self._pending.extend(self.activity(t)[1])
        return self._pending.popleft()

    def stream(self, times: Iterable[float]) -> Iterator[Operation]:
        """One operation per intended start time in ``times``."""
        for t in times:
            yield self.next_op(t)
