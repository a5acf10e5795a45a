"""A payment processor's memory stays bounded under sync durability: it keeps at most
``payment_cache_size`` payments and reads any other back from the store, so a repeated charge
of a payment it let go of charges nothing and a repeated refund moves no money; a restart loads
every payment when they fit (and then a new order's charge reads nothing from the store), else
none; with async or none durability it keeps every payment.

In process (no Ray), on a real SQLite file, as ``test_inventory_memory``.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from actors.payments import PaymentProcessor
from marketplace.config import Durability, Settings
from marketplace.domain.payments import PaymentStatus
from marketplace.store import payments as store
from marketplace.store.tables import ledger_entries
from tests.unit.factories import hex_id

pytestmark = pytest.mark.unit

CACHE = 2


def order(n: int) -> str:
    return hex_id("ord", n)


async def _started(
    sqlite_url: str, cache: int = CACHE, durability: str = "sync"
) -> PaymentProcessor:
    settings = Settings(database_url=sqlite_url, durability=Durability(durability))
    processor = PaymentProcessor({**settings.model_dump(), "payment_cache_size": cache})
    await processor.ready()
    return processor


async def _stopped(processor: PaymentProcessor) -> None:
    await processor.writer.close()
    await processor.database.dispose()


async def _moves(processor: PaymentProcessor, order_id: str) -> list[str]:
    async with processor.database.connect() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.operation).where(
                ledger_entries.c.order_id == order_id, ledger_entries.c.amount_cents > 0
            )
        )
        return list(rows.scalars())


async def test_a_forgotten_payment_is_charged_and_refunded_once(sqlite_url: str) -> None:
    processor = await _started(sqlite_url)
    charged = [await processor.charge(order(n), 100 * n, "tok_visa") for n in range(1, 6)]
    assert len(processor.payments) == CACHE
    assert order(1) not in processor.payments

    assert await processor.charge(order(1), 100, "tok_visa") == charged[0]
    assert await processor.get(order(2)) == charged[1]
    refunded = await processor.refund(order(3))
    assert refunded is not None and refunded.status is PaymentStatus.REFUNDED
    for n in range(6, 6 + CACHE):  # push the refund out of memory
        await processor.charge(order(n), 100, "tok_visa")
    assert order(3) not in processor.payments
    assert await processor.refund(order(3)) == refunded
    assert await processor.cancel_charge(order(3)) == refunded
    moves = await _moves(processor, order(3))
    assert (moves.count("capture"), moves.count("refund")) == (1, 1)
    assert (await _moves(processor, order(1))).count("capture") == 1
    assert len(processor.payments) == CACHE
    assert len(await processor.snapshot()) == 5 + CACHE  # the audit sees them all
    await _stopped(processor)


async def test_a_restart_loads_every_payment_only_when_they_fit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _started(sqlite_url)
    for n in range(1, 6):
        await first.charge(order(n), 100, "tok_visa")
    await _stopped(first)

    small = await _started(sqlite_url)
    assert len(small.payments) == 0
    assert (await small.get(order(4))) is not None  # read back
    await _stopped(small)

    roomy = await _started(sqlite_url, cache=10)
    assert set(roomy.payments) == {order(n) for n in range(1, 6)}

    async def no_read(*_: Any) -> None:
        raise AssertionError("a new order's charge read the store")

    monkeypatch.setattr(store, "load_one", no_read)
    fresh = await roomy.charge(order(9), 100, "tok_visa")
    assert fresh.status is PaymentStatus.CAPTURED
    await _stopped(roomy)


@pytest.mark.parametrize("durability", ["async", "none"])
async def test_without_sync_memory_keeps_every_payment(sqlite_url: str, durability: str) -> None:
    processor = await _started(sqlite_url, durability=durability)
    for n in range(1, 6):
        await processor.charge(order(n), 100, "tok_visa")
    assert len(processor.payments) == 5
    await processor.writer.close()
    if processor.engine is not None:
        await processor.engine.dispose()
