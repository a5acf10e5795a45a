"""What the actors record about themselves (``actors.metrics``), in-process: each public call
counts in flight while it runs and is timed once, whatever it ends with; start-up hooks and the
plumbing every actor inherits are not calls; a writer reports each commit; a coordinator keeps
its orders by status as they change, zeros included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from actors.base import ActorBase
from actors.metrics import ActorMetrics
from actors.orders import OrderCoordinator
from marketplace.config import Durability, Settings
from marketplace.domain.users import Principal, Role
from marketplace.store.engine import create_engine
from marketplace.store.writer import Writer
from tests.unit.factories import BUYER
from tests.unit.test_saga import IN_MEMORY, P1, P2, FakePeers, checkout

pytestmark = pytest.mark.unit


class RecordingMetrics(ActorMetrics):
    """Keeps what it is told, besides recording it."""

    def __init__(self) -> None:
        super().__init__("tests", "Probe")
        self.calls: list[str] = []
        self.peak = 0
        self.commits: list[int] = []

    def call_started(self) -> None:
        super().call_started()
        self.peak = max(self.peak, self.in_flight)

    def call_ended(self, method: str, seconds: float) -> None:
        super().call_ended(method, seconds)
        assert seconds >= 0
        self.calls.append(method)

    def committed(self, changes: int, seconds: float) -> None:
        super().committed(changes, seconds)
        self.commits.append(changes)


class Probe(ActorBase):
    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate
        super().__init__(Settings(durability=Durability.NONE).model_dump())
        self.metrics = RecordingMetrics()

    async def load(self) -> None:
        pass

    async def wait(self) -> str:
        await self.loaded()
        await self.gate.wait()
        return "done"

    async def fail(self) -> None:
        raise ValueError("refused")

    def plain(self) -> str:  # not a coroutine: not a Ray call of this marketplace
        return "plain"

    async def _private(self) -> None:
        pass


async def test_calls_count_in_flight_while_they_run_and_are_timed_once() -> None:
    gate = asyncio.Event()
    probe = Probe(gate)
    metrics = probe.metrics
    assert isinstance(metrics, RecordingMetrics)
    waiting = [asyncio.ensure_future(probe.wait()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert metrics.in_flight == 3
    gate.set()
    assert await asyncio.gather(*waiting) == ["done"] * 3
    with pytest.raises(ValueError, match="refused"):
        await probe.fail()
    assert metrics.in_flight == 0 and metrics.peak == 3
    assert sorted(metrics.calls) == ["fail", "wait", "wait", "wait"]
    # Inherited plumbing, start-up hooks, private and plain methods are not counted.
    await probe.ready()
    await probe.run_batch([("wait", (), {})])  # its call is counted as the call it carries
    await probe._private()
    assert probe.plain() == "plain"
    assert sorted(metrics.calls) == ["fail", "wait", "wait", "wait", "wait"]


async def test_a_writer_reports_each_commit_with_its_changes(tmp_path: Path) -> None:
    told: list[tuple[int, float]] = []
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    writer = Writer(engine, Durability.SYNC, on_commit=lambda n, s: told.append((n, s)))

    async def work(conn: AsyncConnection) -> None:
        await conn.execute(text("select 1"))

    await asyncio.gather(*(writer.write(work) for _ in range(5)))
    await writer.close()
    await engine.dispose()
    assert sum(n for n, _ in told) == 5 and len(told) == writer.commits < 5  # grouped
    assert all(seconds >= 0 for _, seconds in told)


async def test_a_coordinator_keeps_its_orders_by_status_as_they_change() -> None:
    peers = FakePeers([P1, P2])
    await peers.resolve()
    await peers.inventory.adjust_stock(P1.id, 5, "seed")
    coordinator = OrderCoordinator(IN_MEMORY, peers=peers, writer=Writer(None, Durability.NONE))
    await coordinator.ready()
    confirmed = await coordinator.place_order(checkout("a", [(P1, 1)]))
    await coordinator.place_order(checkout("b", [(P2, 1)]))  # no stock: cancelled
    stats = await coordinator.stats()
    assert (stats["status_confirmed"], stats["status_cancelled"]) == (1, 1)
    assert stats["status_pending"] == 0 and stats["compensations"] == 1
    await coordinator.cancel_order(Principal(id=BUYER, role=Role.BUYER), confirmed.id)
    stats = await coordinator.stats()
    assert (stats["status_confirmed"], stats["status_cancelled"]) == (0, 2)
    counted = sum(v for k, v in stats.items() if k.startswith("status_"))
    assert counted == len(coordinator.orders) == 2
