"""One simulation: a preset's workload over a seeded market, run open or closed loop.

``SimConfig`` says what to run (preset, rate or agents, duration, seed, market size);
``build_market(config)`` is the market to seed; ``await simulate(target, market, config)`` runs it
and returns the loop's ``RunResult``. Every random draw comes from streams named after the seed,
so the same config gives the same intended operations, whatever the target does.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from marketplace.sim.arrivals import poisson, rate_curve
from marketplace.sim.loops import OpRecord, RunResult, Target, run_closed, run_open
from marketplace.sim.market import DEFAULT_ZIPF, SyntheticMarket, generate_market
from marketplace.sim.presets import Preset, preset
from marketplace.sim.workload import Workload

if TYPE_CHECKING:
    from marketplace.sim.faults.plan import FaultPlan

NO_FAULTS = "none"
"""The ``faults`` value that means no fault plan (a sweep's baseline)."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Open loop by default: Poisson arrivals at ``rate`` operations per second, or following
    ``rate_steps`` (``[(t, rate), ...]``) when given. With ``agents`` set, a closed loop of that
    many agents thinking ``think_time`` seconds between operations. The market is generated from
    ``seed`` with ``sellers``, ``products`` and ``buyers``; its stock is drawn between
    ``stock_min`` and ``stock_max`` units per product, large by default so that a long run
    measures the runtime rather than sold-out products. ``zipf``, when set, replaces the preset's
    Zipf exponent of product popularity (a hot-product experiment sweeps it). ``faults`` names a
    fault plan to run beside the load (``marketplace.sim.faults``; ``none`` for none).
    """

    preset: str = "om"
    rate: float = 50.0
    duration: float = 30.0
    seed: int = 7
    agents: int | None = None
    think_time: float = 1.0
    rate_steps: Sequence[tuple[float, float]] | None = None
    max_in_flight: int = 2_000
    sellers: int = 10
    products: int = 500
    buyers: int = 200
    stock_min: int = 5_000
    stock_max: int = 20_000
    zipf: float | None = None
    faults: str | None = None

    def __post_init__(self) -> None:
        preset(self.preset)  # an unknown name fails here, listing the known ones
        if self.faults not in (None, NO_FAULTS):
            from marketplace.sim.faults.plan import load_plan

            load_plan(self.faults)  # a bad plan fails here (a PlanError is a ValueError)
        if self.rate < 0:
            raise ValueError("rate must be >= 0")
        if self.duration <= 0:
            raise ValueError("duration must be > 0")
        if self.agents is not None and self.agents < 1:
            raise ValueError("agents must be >= 1")
        if self.think_time <= 0:
            raise ValueError("think_time must be > 0")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.zipf is not None and self.zipf < 0:
            raise ValueError("zipf must be >= 0")

    @property
    def the_preset(self) -> Preset:
        """The named preset, with ``zipf`` in place of its exponent when set."""
        named = preset(self.preset)
        return named if self.zipf is None else dataclasses.replace(named, zipf=self.zipf)

    @property
    def fault_plan(self) -> FaultPlan | None:
        """The fault plan ``faults`` names (a file or a built-in), or None (also for ``none``,
        so that a sweep can compare a plan against no faults)."""
        if self.faults in (None, NO_FAULTS):
            return None
        from marketplace.sim.faults.plan import load_plan

        return load_plan(self.faults)

    @property
    def loop(self) -> str:
        """``open`` or ``closed``."""
        return "open" if self.agents is None else "closed"

    def describe(self) -> str:
        """One line: the preset, the load and the seed."""
        if self.agents is not None:
            load = f"{self.agents} agents, think {self.think_time:g} s"
        elif self.rate_steps:
            load = "rate curve " + ", ".join(f"{r:g}/s@{t:g}s" for t, r in self.rate_steps)
        else:
            load = f"{self.rate:g} ops/s"
        zipf = "" if self.zipf is None else f", Zipf {self.zipf:g}"
        faults = "" if self.faults in (None, NO_FAULTS) else f", faults {self.faults}"
        return f"preset {self.preset}{zipf}, {load}, {self.duration:g} s, seed {self.seed}{faults}"


def build_market(config: SimConfig) -> SyntheticMarket:
    """The market ``config`` simulates, to seed before the run."""
    zipf = config.the_preset.zipf
    return generate_market(
        config.seed,
        sellers=config.sellers,
        products=config.products,
        buyers=config.buyers,
        zipf=DEFAULT_ZIPF if zipf is None else zipf,
        stock_min=config.stock_min,
        stock_max=config.stock_max,
    )


def workload_for(market: SyntheticMarket, config: SimConfig) -> Workload:
    """The seeded stream of operations ``config`` runs over ``market``."""
    return Workload(market, config.the_preset, random.Random(f"sim/{config.seed}/workload"))


def schedule_for(config: SimConfig) -> list[float]:
    """The open loop's intended starts (seconds from the start)."""
    rng = random.Random(f"sim/{config.seed}/arrivals")
    if config.rate_steps:
        return rate_curve(rng, config.rate_steps, config.duration)
    return poisson(rng, config.rate, config.duration)


async def simulate(
    target: Target,
    market: SyntheticMarket,
    config: SimConfig,
    *,
    on_record: Callable[[OpRecord], None] | None = None,
) -> RunResult:
    """Run ``config``'s workload over ``market`` (already seeded) against ``target``."""
    workload = workload_for(market, config)
    if config.agents is not None:
        return await run_closed(
            target,
            config.agents,
            config.think_time,
            config.duration,
            workload.next_op,
            on_record=on_record,
        )
    schedule = schedule_for(config)
    return await run_open(
        target,
        schedule,
        workload.stream(schedule),
        max_in_flight=config.max_in_flight,
        duration=config.duration,
        on_record=on_record,
    )
