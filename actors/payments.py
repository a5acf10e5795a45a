"""PaymentProcessor: a simulated card provider; every operation is idempotent by order id."""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from actors.base import ActorBase
from actors.faults import FAULTS
from actors.lru import LruCache
from actors.protocols import PaymentProcessorApi
from marketplace.domain.errors import NotFound, TransientFailure
from marketplace.domain.ids import sibling_id
from marketplace.domain.payments import (
    CardDecision,
    LedgerEntry,
    Payment,
    PaymentStatus,
    authorize,
    decide_card,
    declined,
    payment_events,
)
from marketplace.store import payments as store
from marketplace.store.writer import Writer


class PaymentProcessor(ActorBase):
    """Owns payments by ``stable_hash(order_id) % processors``.

    With sync durability the store has every payment before memory does, so memory keeps only
    the ``payment_cache_size`` most recently used, and reads any other back from the store,
    under the order's lock, before anything is decided about it: a repeated charge of an order
    memory let go of finds its payment and charges nothing. No payment is work of the
    processor's own (every change is a caller's request), so none has to stay. With async or
    none durability memory is the newest (or the only) copy and keeps every payment.
    """

    SOURCE = "marketplace/payments"

    def __init__(
        self,
        settings: dict[str, Any],
        index: int = 0,
        count: int = 1,
        *,
        writer: Writer | None = None,
    ) -> None:
        # Card-network attempts of the orders that have no payment yet (a decision depends on
        # the attempt); dropped once the order has one, which is never asked for again.
        self.attempts: dict[str, int] = {}
        # Orders whose last write failed without a sure answer: it may have committed (the
        # connection cut right after COMMIT), so memory may be behind the store until re-read.
        self.unsure: set[str] = set()
        # Whether load() read every payment owned here (see _knows_every_payment).
        self._loaded_all = True
        super().__init__(settings, index, count, writer=writer)
        # payments by order id: all of them, or the most recently used (``store_first``)
        self.payments: LruCache[str, Payment] = LruCache(
            self.settings.payment_cache_size if self.store_first else None
        )

    async def load(self) -> None:
        # Every payment when the cache holds them all, so that a charge of a new order asks
        # the store nothing; past that none (none is work of this processor's own): each is
        # read back when asked for.
        fits = not self.store_first or (
            await store.owned_count(self.database, self.index, self.count)
            <= self.settings.payment_cache_size
        )
        if fits:
            for payment in await store.load_owned(self.database, self.index, self.count):
                self.payments[payment.order_id] = payment
        self._loaded_all = fits

    async def authorize(self, order_id: str, amount_cents: int, card_token: str) -> Payment:
        """Ask the card network to hold ``amount_cents``; a repeat returns the first answer.

        Raises TransientFailure when the simulated network errs; the caller retries.
        """
        await self.loaded()
        async with self.locks.hold(order_id):
            existing = await self._payment(order_id)
            if existing is not None:
                return existing
            payment, entries = await self._ask_network(order_id, amount_cents, card_token)
            await self._save([payment], entries)
            return payment

    async def charge(self, order_id: str, amount_cents: int, card_token: str) -> Payment:
        """Authorize and capture in one card-network call (a sale); the checkout's payment step.

        A repeat returns the payment as it stands, and captures an authorization that an
        earlier ``authorize`` left uncaptured. A declined card comes back DECLINED, having
        moved nothing. Raises TransientFailure when the simulated network errs; the caller
        retries.
        """
        await self.loaded()
        async with self.locks.hold(order_id):
            existing = await self._payment(order_id)
            if existing is not None:
                if existing.status is not PaymentStatus.AUTHORIZED:
                    return existing
                captured, moved = existing.capture()
                await self._network_latency()
                await self._save([captured], moved)
                return captured
            payment, held = await self._ask_network(order_id, amount_cents, card_token)
            if payment.status is not PaymentStatus.AUTHORIZED:
                await self._save([payment], held)
                return payment
            captured, moved = payment.capture()
            # Both states are recorded, with both events, in one transaction.
            await self._save([payment, captured], held + moved)
            return captured

    async def _ask_network(
        self, order_id: str, amount_cents: int, card_token: str
    ) -> tuple[Payment, list[LedgerEntry]]:
        """The card network's answer: an authorization and its hold, or a decline."""
        await self._network_latency()
        attempt = self.attempts.get(order_id, 0)
        self.attempts[order_id] = attempt + 1
        decision = decide_card(card_token, order_id, attempt, self.settings.payment_decline_rate)
        if await FAULTS.card_network() or decision is CardDecision.TRANSIENT_ERROR:
            raise TransientFailure("card network error, try again", order_id=order_id)
        payment_id = sibling_id(order_id, "pay")
        if decision is CardDecision.DECLINE:
            return declined(payment_id, order_id, amount_cents), []
        return authorize(payment_id, order_id, amount_cents)

    async def capture(self, order_id: str) -> Payment:
        """Capture the authorized amount; a repeat is a no-op."""
        captured = await self._apply(order_id, PaymentStatus.CAPTURED)
        if captured is None:
            raise NotFound(f"no payment for order {order_id}", order_id=order_id)
        return captured

    async def void(self, order_id: str) -> Payment | None:
        """Drop an uncaptured authorization; no-op when none, or when already voided."""
        return await self._apply(order_id, PaymentStatus.VOIDED)

    async def refund(self, order_id: str) -> Payment | None:
        """Refund a captured payment, or void one never captured; idempotent."""
        return await self._apply(order_id, PaymentStatus.REFUNDED)

    async def cancel_charge(self, order_id: str) -> Payment:
        """Undo a charge whose answer never came: refund a capture, void an authorization, and
        when there is no payment yet, record a void first, so that a charge still on its way
        (a Ray retry after a restart, say) finds it and charges nothing. Idempotent."""
        await self.loaded()
        async with self.locks.hold(order_id):
            if await self._payment(order_id) is None:
                voided = Payment(
                    id=sibling_id(order_id, "pay"),
                    order_id=order_id,
                    status=PaymentStatus.VOIDED,
                    amount_cents=0,
                )
                await self._save([voided], [])
                return voided
        refunded = await self._apply(order_id, PaymentStatus.REFUNDED)
        assert refunded is not None
        return refunded

    async def get(self, order_id: str) -> Payment | None:
        """The payment of an order, if any."""
        await self.loaded()
        held = self.payments.get(order_id)
        if held is not None and order_id not in self.unsure:
            return held
        async with self.locks.hold(order_id):
            return await self._payment(order_id)

    async def snapshot(self) -> list[Payment]:
        """Every payment of this processor (audit): as memory holds it, and, for those memory
        let go of (``store_first``), as the store does, which is how ``get`` would answer."""
        await self.loaded()
        for order_id in list(self.unsure):
            async with self.locks.hold(order_id):
                await self._reconcile(order_id)
        held = dict(self.payments.items())
        if not self.store_first or self._knows_every_payment():
            return list(held.values())
        stored = await store.load_owned(self.database, self.index, self.count)
        return [*held.values(), *(p for p in stored if p.order_id not in held)]

    async def _apply(self, order_id: str, target: PaymentStatus) -> Payment | None:
        await self.loaded()
        async with self.locks.hold(order_id):
            payment = await self._payment(order_id)
            if payment is None:
                return None
            status = payment.status
            if status is target or status in (PaymentStatus.DECLINED, PaymentStatus.VOIDED):
                return payment
            if target is PaymentStatus.CAPTURED:
                updated, entries = payment.capture()
            elif status is PaymentStatus.AUTHORIZED:
                updated, entries = payment.void()
            elif target is PaymentStatus.REFUNDED and status is PaymentStatus.CAPTURED:
                updated, entries = payment.refund()
            else:
                return payment
            await self._network_latency()
            await self._save([updated], entries)
            return updated

    async def _network_latency(self) -> None:
        if self.settings.payment_latency_ms:
            await asyncio.sleep(self.settings.payment_latency_ms / 1000)

    async def _save(self, states: list[Payment], entries: list[LedgerEntry]) -> None:
        """Record a payment's new state (the last of ``states``) with an event for each state."""
        payment = states[-1]
        try:
            await self.writer.write(
                store.saved(payment, entries, self.SOURCE, payment_events(states))
            )
        except TransientFailure:
            # The commit may have happened with its answer lost: remembering nothing would
            # let a later cancel void over a capture the store holds, and remembering the new
            # state would trust a write that may not be there. The store decides, next time.
            self.unsure.add(payment.order_id)
            raise
        self.attempts.pop(payment.order_id, None)
        self.payments[payment.order_id] = payment

    async def _payment(self, order_id: str) -> Payment | None:
        """The order's payment, as the store has it: memory's copy, or the store's when memory
        let it go or its last write had no sure answer (under the order's lock, before
        anything reads or changes it; what is read back is kept)."""
        await self._reconcile(order_id)
        payment = self.payments.get(order_id)
        if payment is not None or not self.store_first or self._knows_every_payment():
            return payment
        stored = await store.load_one(self.database, order_id)
        if stored is not None:
            self.payments[order_id] = stored
        return stored

    def _knows_every_payment(self) -> bool:
        """Whether memory holds every payment owned here (loaded all of them, and let none
        go since), so that an order it holds none of has none."""
        return self._loaded_all and self.payments.dropped == 0

    async def _reconcile(self, order_id: str) -> None:
        """Take the store's word for a payment whose last write had no sure answer (under
        the order's lock, before anything reads or changes it)."""
        if order_id not in self.unsure or self.engine is None:
            return
        stored = await store.load_one(self.engine, order_id)
        if stored is None:
            self.payments.pop(order_id, None)
        else:
            self.payments[order_id] = stored
        self.unsure.discard(order_id)


_ANSWERS: type[PaymentProcessorApi] = PaymentProcessor  # mypy checks the class against its protocol
PaymentProcessorActor = ray.remote(PaymentProcessor)
