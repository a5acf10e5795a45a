"""A payment write that commits but whose answer is lost: the processor takes the store's word.

The processor runs in this process (no Ray) on a real SQLite store; its writer commits and then
raises the 503 a connection cut right after COMMIT gives (``store.failures``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.payments import PaymentProcessor
from marketplace.config import Durability, Settings
from marketplace.domain.errors import TransientFailure
from marketplace.domain.payments import Account, Payment, PaymentStatus
from marketplace.store import migrate
from marketplace.store import payments as store
from marketplace.store.engine import create_engine
from tests.unit.factories import LosingWriter, hex_id

pytestmark = pytest.mark.unit

ORDER = hex_id("ord", 7)


async def stored(engine: AsyncEngine) -> tuple[list[Payment], int]:
    """The stored payments, and the cash the store's ledger says was taken."""
    async with engine.connect() as conn:
        payments, ledger = await store.load_all(conn)
    return payments, sum(e.amount_cents for e in ledger if e.account is Account.CASH)


@pytest.mark.parametrize("undo", ["cancel_charge", "refund"])
async def test_an_undo_after_a_charge_whose_answer_was_lost_refunds_the_stored_capture(
    tmp_path: Path, undo: str
) -> None:
    url = f"sqlite:///{tmp_path / 'payments.db'}"
    await migrate.upgrade_async(url)
    settings = Settings(database_url=url, durability=Durability.SYNC).model_dump()
    engine = create_engine(url)
    writer = LosingWriter(engine, Durability.SYNC)
    processor = PaymentProcessor(settings, writer=writer)
    await processor.ready()

    writer.lose = 1
    with pytest.raises(TransientFailure):
        await processor.charge(ORDER, 1500, "tok_visa")
    payments, cash = await stored(engine)
    assert [(p.status, cash) for p in payments] == [(PaymentStatus.CAPTURED, 1500)]

    undone = await getattr(processor, undo)(ORDER)
    assert undone is not None
    assert undone.status is PaymentStatus.REFUNDED

    payments, cash = await stored(engine)
    assert [(p.status, p.captured_cents - p.refunded_cents) for p in payments] == [
        (PaymentStatus.REFUNDED, 0)
    ]
    assert cash == 0  # I2: nothing kept for an order that ends cancelled
    assert await processor.snapshot() == payments  # memory equals the store
    await writer.close()
