"""Named workload presets: what share of activities each kind gets, and their shape.

A ``Preset`` is plain data. ``mix`` weighs the activities a ``Workload`` draws one after another
(a customer session counts as one activity however many operations it makes); ``session`` shapes
customer sessions; ``zipf`` skews product popularity; ``flash`` optionally multiplies one
product's demand over a time window. ``preset(name)`` returns one of ``PRESETS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Activity(StrEnum):
    """What a ``Workload`` draws from a preset's mix; each becomes one or more operations."""

    SESSION = "session"
    DASHBOARD = "dashboard"
    PRICE_UPDATE = "price_update"
    PRODUCT_UPDATE = "product_update"
    RESTOCK = "restock"
    DELIVERY = "delivery"


@dataclass(frozen=True)
class SessionShape:
    """A customer session: browse, maybe search, fill the cart, then check out or abandon.

    Ranges are inclusive. Each cart line adds ``1 .. max_quantity`` units, so with the defaults a
    cart holds 1 to 9 items.
    """

    browses: tuple[int, int] = (1, 4)
    search_probability: float = 0.3
    cart_lines: tuple[int, int] = (1, 3)
    max_quantity: int = 3
    checkout_probability: float = 0.7

    def __post_init__(self) -> None:
        low, high = self.browses
        if not 0 <= low <= high:
            raise ValueError("browses must be (low, high) with 0 <= low <= high")
        low, high = self.cart_lines
        if not 1 <= low <= high:
            raise ValueError("cart_lines must be (low, high) with 1 <= low <= high")
        if not 1 <= self.max_quantity <= 10:
            raise ValueError("max_quantity must be 1 to 10")
        for name in ("search_probability", "checkout_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")


@dataclass(frozen=True)
class FlashWindow:
    """From ``start_s`` to ``end_s`` (seconds into the run), the product of popularity ``rank``
    has its demand weight multiplied by ``multiplier``."""

    start_s: float
    end_s: float
    rank: int
    multiplier: float

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise ValueError("need 0 <= start_s < end_s")
        if self.rank < 0:
            raise ValueError("rank must be >= 0")
        if self.multiplier <= 0:
            raise ValueError("multiplier must be > 0")

    def active(self, t: float) -> bool:
        """Whether ``t`` (seconds into the run) falls inside the window."""
        return self.start_s <= t < self.end_s


@dataclass(frozen=True)
class Preset:
    """A workload: the activity mix (weights, normalised on use), Zipf exponent and shapes.

    ``zipf`` None keeps the market's own popularity weights.
    """

    name: str
    description: str
    mix: Mapping[Activity, float]
    zipf: float | None = 1.0
    session: SessionShape = field(default_factory=SessionShape)
    flash: FlashWindow | None = None
    carriers: int = 3

    def __post_init__(self) -> None:
        if any(weight < 0 for weight in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError("mix weights must be >= 0 with a positive sum")
        if self.zipf is not None and self.zipf < 0:
            raise ValueError("zipf must be >= 0")
        if self.carriers < 0:
            raise ValueError("carriers must be >= 0")
        # A read-only copy, so a preset shared as a module constant cannot be changed in place.
        object.__setattr__(self, "mix", MappingProxyType(dict(self.mix)))

    def shares(self) -> dict[Activity, float]:
        """The mix normalised to sum to 1, activities with weight 0 left out."""
        total = sum(self.mix.values())
        return {kind: weight / total for kind, weight in self.mix.items() if weight > 0}


# The Online Marketplace benchmark's transaction mix: every session ends in a checkout.
OM = Preset(
    name="om",
    description="the Online Marketplace benchmark's mix: checkouts and deliveries, Zipf 1.0",
    mix={
        Activity.SESSION: 0.30,
        Activity.DASHBOARD: 0.05,
        Activity.PRICE_UPDATE: 0.03,
        Activity.PRODUCT_UPDATE: 0.02,
        Activity.DELIVERY: 0.60,
    },
    zipf=1.0,
    session=SessionShape(checkout_probability=1.0),
)

# Mostly window shopping: 92% sessions, 5.5% of which check out, so about 5% of activities.
BROWSE = Preset(
    name="browse",
    description="browse-heavy: long sessions, about 5% of activities end in a checkout",
    mix={
        Activity.SESSION: 0.92,
        Activity.DASHBOARD: 0.03,
        Activity.PRICE_UPDATE: 0.02,
        Activity.PRODUCT_UPDATE: 0.01,
        Activity.RESTOCK: 0.01,
        Activity.DELIVERY: 0.01,
    },
    zipf=1.0,
    session=SessionShape(browses=(2, 8), search_probability=0.5, checkout_probability=0.055),
)

# A background of sessions and deliveries, and a mid-popularity product (rank 20) whose demand
# is multiplied 50 times from 10 s to 40 s: far enough down the Zipf tail for the spike to show.
FLASH = Preset(
    name="flash",
    description="a flash sale on one product (10 s to 40 s) over a background load",
    mix={
        Activity.SESSION: 0.50,
        Activity.DASHBOARD: 0.04,
        Activity.PRICE_UPDATE: 0.02,
        Activity.PRODUCT_UPDATE: 0.01,
        Activity.RESTOCK: 0.03,
        Activity.DELIVERY: 0.40,
    },
    zipf=1.0,
    session=SessionShape(checkout_probability=0.5),
    flash=FlashWindow(start_s=10.0, end_s=40.0, rank=20, multiplier=50.0),
)

# Nothing but checkouts of 1 to 3 lines of 1 or 2 units over uniformly popular products: the
# order mix of `python -m marketplace.bench.checkout`, through the cart, for comparing the two.
CHECKOUT = Preset(
    name="checkout",
    description="checkouts only: 1 to 3 cart lines, uniform popularity (bench.checkout's mix)",
    mix={Activity.SESSION: 1.0},
    zipf=0.0,
    session=SessionShape(
        browses=(0, 0),
        search_probability=0.0,
        cart_lines=(1, 3),
        max_quantity=2,
        checkout_probability=1.0,
    ),
    carriers=0,
)

# Sellers repricing popular products while shoppers browse them: about one product write to
# eight reads, Zipf 1.0 so that reads and writes meet on the same hot products. The workload of
# the consistency experiment, where a replica's lag shows as stale reads.
PRICES = Preset(
    name="prices",
    description="price-update-heavy: browsing sessions while sellers reprice the popular products",
    mix={
        Activity.SESSION: 0.60,
        Activity.PRICE_UPDATE: 0.30,
        Activity.PRODUCT_UPDATE: 0.10,
    },
    zipf=1.0,
    session=SessionShape(
        browses=(3, 8), search_probability=0.3, cart_lines=(1, 1), checkout_probability=0.1
    ),
    carriers=0,
)

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {p.name: p for p in (OM, BROWSE, FLASH, CHECKOUT, PRICES)}
)


def preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown preset {name!r}; known presets: {known}") from None
