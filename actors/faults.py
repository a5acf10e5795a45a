"""Faults injected into this process's calls and card network, for fault plans.

A fault plan (``marketplace.sim.faults``) reaches inside the runtime through here: it tells an
actor (``ActorBase.inject_fault``), or the driver process itself, to delay or lose its calls to
one kind of actor for a while, or to make the simulated card network slow or failing. Each
injected fault has an id, so several overlap and each is lifted on its own.

The state is per process and in memory: an actor that restarts comes back without the faults
that were injected into it, as a real process would after a crash. With nothing injected the
call path pays one dict lookup.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

R = TypeVar("R")


class CallLost(ConnectionError):
    """A call that an injected fault lost on its way (to the actor, or back with its answer)."""


@dataclass(frozen=True)
class LinkFault:
    """Calls from this process to actors of ``target``: delayed by ``delay_s`` and lost with
    probability ``drop_rate`` (the request before it arrives, or the reply after the actor did
    the work, as ``lose`` says)."""

    target: str
    delay_s: float = 0.0
    drop_rate: float = 0.0
    lose: Literal["request", "reply"] = "request"
    seed: int = 0


@dataclass(frozen=True)
class CardFault:
    """The simulated card network: ``latency_s`` more per call, and ``error_rate`` of calls
    failing transiently (as ``tok_error`` does, so the caller's retries apply)."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    seed: int = 0


Fault = LinkFault | CardFault


class ProcessFaults:
    """The faults injected into this process, by id."""

    def __init__(self) -> None:
        self._links: dict[str, LinkFault] = {}
        self._cards: dict[str, CardFault] = {}
        self._rngs: dict[str, random.Random] = {}

    def inject(self, fault_id: str, fault: Fault | None) -> None:
        """Start ``fault`` under ``fault_id`` (replacing one of that id), or lift it (None)."""
        self._links.pop(fault_id, None)
        self._cards.pop(fault_id, None)
        self._rngs.pop(fault_id, None)
        if fault is None:
            return
        # One stream per fault, so a plan's seed decides which calls it loses.
        self._rngs[fault_id] = random.Random(f"{fault_id}/{fault.seed}")
        if isinstance(fault, LinkFault):
            self._links[fault_id] = fault
        else:
            self._cards[fault_id] = fault

    def active(self) -> list[str]:
        """The ids of the faults in force."""
        return sorted([*self._links, *self._cards])

    def touches(self, target: str) -> bool:
        """Whether calls to ``target`` are affected now."""
        return any(link.target == target for link in self._links.values())

    async def through(self, target: str, make_call: Callable[[], Awaitable[R]]) -> R:
        """Make the call through every link fault on ``target``."""
        links = [(fid, link) for fid, link in self._links.items() if link.target == target]
        delay = sum(link.delay_s for _, link in links)
        if delay:
            await asyncio.sleep(delay)
        for fid, link in links:
            if link.lose == "request" and self._draw(fid) < link.drop_rate:
                raise CallLost(f"call to {target} lost by fault {fid}")
        result = await make_call()
        for fid, link in links:
            if link.lose == "reply" and self._draw(fid) < link.drop_rate:
                raise CallLost(f"answer from {target} lost by fault {fid}")
        return result

    async def card_network(self) -> bool:
        """Apply the card faults in force; True when this call should fail transiently."""
        failed = False
        for fid, card in list(self._cards.items()):
            if card.latency_s:
                await asyncio.sleep(card.latency_s)
            if card.error_rate and self._draw(fid) < card.error_rate:
                failed = True
        return failed

    def _draw(self, fault_id: str) -> float:
        rng = self._rngs.get(fault_id)
        return 1.0 if rng is None else rng.random()


FAULTS = ProcessFaults()
"""This process's injected faults."""


def fault_from(spec: dict[str, Any] | None) -> Fault | None:
    """A fault from its wire form (``{"type": "link"|"card", ...}``), or None to lift."""
    if spec is None:
        return None
    fields = {k: v for k, v in spec.items() if k != "type"}
    if spec.get("type") == "link":
        return LinkFault(**fields)
    if spec.get("type") == "card":
        return CardFault(**fields)
    raise ValueError(f"unknown fault type {spec.get('type')!r}")
