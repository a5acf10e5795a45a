"""The invariant audit: checks I1, I2, I3, I4 and I6 over a snapshot and names violating rows.

The checks are pure functions of ``AuditData``; ``marketplace.store.snapshot`` fills it from the
store and ``actors.snapshots`` from the live actors, and ``live_matches_store`` compares the two.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from marketplace.domain.inventory import Reservation, ReservationState, StockItem
from marketplace.domain.orders import SOLD_STATUSES, Order, OrderStatus
from marketplace.domain.payments import Account, LedgerEntry, Payment
from marketplace.domain.sellers import Dashboard, SellerOrderFact, facts_of

MAX_VIOLATIONS = 50


@dataclass
class AuditData:
    """Everything the checks look at. ``None`` marks what a source cannot provide."""

    stock: list[StockItem]
    reservations: list[Reservation]
    orders: list[Order]
    payments: list[Payment]
    facts: list[SellerOrderFact]
    dashboards: list[Dashboard]
    movements: dict[str, int] | None = None  # product_id -> sum of deltas
    ledger: list[LedgerEntry] | None = None
    order_events: set[tuple[str, str]] | None = None  # (subject, type)
    # Published events older than the outbox's retention may be pruned: the events of orders
    # last changed before this are not looked for.
    events_kept_since: datetime | None = None
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class CheckResult(BaseModel):
    """One invariant's verdict with the rows that break it."""

    ok: bool
    checked: int
    violations: list[str]
    skipped: str | None = None


class AuditReport(BaseModel):
    """The verdict over every invariant (the body of ``GET /v1/admin/audit``)."""

    ok: bool
    checks: dict[str, CheckResult]
    in_flight_orders: int = 0

    def summary(self) -> str:
        """One line per check."""
        lines = []
        for name, check in self.checks.items():
            verdict = "ok" if check.ok else f"{len(check.violations)} violation(s)"
            if check.skipped:
                verdict = f"skipped ({check.skipped})"
            lines.append(f"{name}: {verdict} over {check.checked} rows")
        return "\n".join(lines)


class _Collector:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(message)

    def result(self, checked: int) -> CheckResult:
        extra = self.count - len(self.violations)
        violations = self.violations + ([f"... and {extra} more"] if extra else [])
        return CheckResult(ok=self.count == 0, checked=checked, violations=violations)


def check_stock(data: AuditData) -> CheckResult:
    """I1: available >= 0 and sold + reserved + available == stocked, with reserved and sold
    matching the reservations and stocked matching the recorded movements."""
    out = _Collector()
    held: Counter[str] = Counter()
    committed: Counter[str] = Counter()
    for r in data.reservations:
        if r.state is ReservationState.HELD:
            held[r.product_id] += r.quantity
        elif r.state is ReservationState.COMMITTED:
            committed[r.product_id] += r.quantity
    for item in data.stock:
        pid = item.product_id
        if min(item.available, item.reserved, item.sold) < 0:
            out.add(
                f"stock {pid}: negative counter (available={item.available}, "
                f"reserved={item.reserved}, sold={item.sold})"
            )
        if item.sold + item.reserved + item.available != item.stocked:
            out.add(f"stock {pid}: sold + reserved + available != stocked")
        if item.reserved != held[pid]:
            out.add(f"stock {pid}: reserved={item.reserved} but held reservations={held[pid]}")
        if item.sold != committed[pid]:
            out.add(f"stock {pid}: sold={item.sold} but committed reservations={committed[pid]}")
        if data.movements is not None and data.movements.get(pid, 0) != item.stocked:
            out.add(
                f"stock {pid}: stocked={item.stocked} but movements sum to "
                f"{data.movements.get(pid, 0)}"
            )
    return out.result(len(data.stock))


def check_charges(data: AuditData) -> CheckResult:
    """I2: at most one capture per order; each order's net charge is its total when sold and
    zero when cancelled; ledger postings balance."""
    out = _Collector()
    payments = {p.order_id: p for p in data.payments}
    captures: Counter[str] = Counter()
    cash: Counter[str] = Counter()
    balance: Counter[str] = Counter()
    if data.ledger is not None:
        for entry in data.ledger:
            balance[entry.order_id] += entry.amount_cents
            if entry.operation == "capture" and entry.amount_cents > 0:
                captures[entry.order_id] += 1
            if entry.account is Account.CASH:
                cash[entry.order_id] += entry.amount_cents
        for order_id, total in balance.items():
            if total != 0:
                out.add(f"ledger of {order_id}: postings sum to {total}, not 0")
        for order_id, count in captures.items():
            if count > 1:
                out.add(f"order {order_id}: captured {count} times")
    for order in data.orders:
        payment = payments.get(order.id)
        net = 0 if payment is None else payment.captured_cents - payment.refunded_cents
        if data.ledger is not None and net != cash[order.id]:
            out.add(f"order {order.id}: payment says net {net}, ledger cash says {cash[order.id]}")
        if order.status in SOLD_STATUSES and order.failure_reason is None:
            if net != order.total_cents:
                out.add(
                    f"order {order.id} ({order.status.value}): charged {net}, "
                    f"total {order.total_cents}"
                )
        elif order.status is OrderStatus.CANCELLED and net != 0:
            out.add(f"order {order.id} (cancelled): still charged {net}")
    known = {order.id for order in data.orders}
    for order_id in payments.keys() - known:
        out.add(f"payment for unknown order {order_id}")
    return out.result(len(data.orders))


def check_orders_settle(data: AuditData, max_pending_age_s: float) -> tuple[CheckResult, int]:
    """I3: every order reaches a terminal state (pending ones older than the allowance are
    stuck); a cancelled order holds no reservation; a sold order's reservations are committed."""
    out = _Collector()
    by_order: dict[str, list[Reservation]] = defaultdict(list)
    for r in data.reservations:
        by_order[r.order_id].append(r)
    horizon = data.taken_at - timedelta(seconds=max_pending_age_s)
    in_flight = 0
    for order in data.orders:
        held = [
            r
            for r in by_order.get(order.id, [])
            if r.state in (ReservationState.HELD, ReservationState.COMMITTED)
        ]
        if order.status is OrderStatus.PENDING or (
            order.status is OrderStatus.CONFIRMED and order.failure_reason is not None
        ):
            if order.updated_at < horizon:
                out.add(
                    f"order {order.id}: stuck {order.status.value} since "
                    f"{order.updated_at.isoformat()}"
                )
            else:
                in_flight += 1
            continue
        if order.status is OrderStatus.CANCELLED and held:
            out.add(
                f"order {order.id} (cancelled): still holds "
                f"{', '.join(f'{r.product_id}:{r.state.value}' for r in held)}"
            )
        if order.status in SOLD_STATUSES:
            states = {r.product_id: r.state for r in by_order.get(order.id, [])}
            for item in order.items:
                if states.get(item.product_id) is not ReservationState.COMMITTED:
                    out.add(
                        f"order {order.id} ({order.status.value}): reservation of "
                        f"{item.product_id} is {states.get(item.product_id)}"
                    )
    return out.result(len(data.orders)), in_flight


def check_events(data: AuditData) -> CheckResult:
    """I4 (outbox side): every order's current status has its event in the outbox (orders
    last changed before ``events_kept_since`` excepted: their events may be pruned)."""
    if data.order_events is None:
        return CheckResult(ok=True, checked=0, violations=[], skipped="no store (durability none)")
    out = _Collector()
    kept_since = data.events_kept_since
    for order in data.orders:
        if order.failure_reason is not None and order.status is not OrderStatus.CANCELLED:
            continue  # an intent, not a status change
        if kept_since is not None and order.updated_at < kept_since:
            continue  # its event may have been published and pruned since
        wanted = f"order.{'placed' if order.status is OrderStatus.PENDING else order.status.value}"
        if (order.id, wanted) not in data.order_events:
            out.add(f"order {order.id}: no {wanted} event in the outbox")
    return out.result(len(data.orders))


def check_dashboards(data: AuditData) -> CheckResult:
    """I6: each dashboard equals the sum over that seller's orders as of the versions it saw,
    and what it saw is what the order was at that version."""
    out = _Collector()
    orders = {order.id: order for order in data.orders}
    sums: dict[str, Dashboard] = {}
    for fact in data.facts:
        sums.setdefault(fact.seller_id, Dashboard(seller_id=fact.seller_id)).add(fact, +1)
        order = orders.get(fact.order_id)
        if order is None:
            out.add(f"dashboard fact for unknown order {fact.order_id}")
            continue
        if order.version == fact.order_version:
            expected = {f.seller_id: f for f in facts_of(order)}.get(fact.seller_id)
            if expected is None or expected != fact:
                out.add(
                    f"seller {fact.seller_id}: fact of {fact.order_id} disagrees with the order"
                )
    seen = {(f.order_id, f.seller_id): f.order_version for f in data.facts}
    for order in data.orders:
        if order.status is OrderStatus.PENDING or order.updated_at >= data.taken_at:
            continue
        for fact in facts_of(order):
            if seen.get((order.id, fact.seller_id), 0) < order.version:
                out.add(
                    f"seller {fact.seller_id}: dashboard missed {order.id} "
                    f"v{order.version} ({order.status.value})"
                )
    dashboards = {d.seller_id: d for d in data.dashboards}
    for seller_id, summed in sums.items():
        board = dashboards.get(seller_id, Dashboard(seller_id=seller_id))
        fields = ("orders_count", "items_sold", "revenue_cents", "open_orders")
        for name in fields:
            if getattr(board, name) != getattr(summed, name):
                out.add(
                    f"seller {seller_id}: {name}={getattr(board, name)}, "
                    f"orders say {getattr(summed, name)}"
                )
    return out.result(len(sums))


def live_matches_store(
    live: AuditData, stored: AuditData, later: AuditData | None = None
) -> CheckResult:
    """The actors' in-memory state is what the store holds (sync durability), both ways.

    The live snapshot is taken before the store is read, so a row the store has at a newer
    version changed in between and is skipped; memory ahead of the store is a violation. A row
    the store holds and no actor does is a violation too (an actor that did not load what it
    owns), unless ``later``, a second live snapshot taken after the store was read, holds it:
    then it was written in between.
    """
    out = _Collector()
    stored_stock = {s.product_id: s for s in stored.stock}
    for item in live.stock:
        other = stored_stock.get(item.product_id)
        if other is None and item.version == 0:
            continue
        if (
            other is None
            or other.version < item.version
            or (other.version == item.version and other != item)
        ):
            out.add(
                f"stock {item.product_id}: memory {_counts(item)} v{item.version} != "
                f"store {_counts(other)}"
            )
    stored_orders = {o.id: o for o in stored.orders}
    for order in live.orders:
        other_order = stored_orders.get(order.id)
        if (
            other_order is None
            or other_order.version < order.version
            or (other_order.version == order.version and other_order.status is not order.status)
        ):
            out.add(
                f"order {order.id}: memory {order.status.value} v{order.version} is not "
                "what the store holds"
            )
    stored_payments = {p.order_id: p for p in stored.payments}
    for payment in live.payments:
        other_payment = stored_payments.get(payment.order_id)
        if (
            other_payment is None
            or other_payment.version < payment.version
            or (other_payment.version == payment.version and other_payment != payment)
        ):
            out.add(f"payment of {payment.order_id}: memory and store differ")
    for row in sorted(store_only(live, stored) - (_held(later) if later is not None else set())):
        out.add(f"{row[0]} {row[1]}: in the store but in no actor's memory")
    return out.result(
        len(live.stock)
        + len(live.orders)
        + len(live.payments)
        + len(stored.stock)
        + len(stored.orders)
        + len(stored.payments)
    )


def store_only(live: AuditData, stored: AuditData) -> set[tuple[str, str]]:
    """(kind, key) of each stock item, order and payment the store holds and memory does not."""
    return _held(stored) - _held(live)


def _held(data: AuditData) -> set[tuple[str, str]]:
    return (
        {("stock", item.product_id) for item in data.stock}
        | {("order", order.id) for order in data.orders}
        | {("payment of", payment.order_id) for payment in data.payments}
    )


def _counts(item: StockItem | None) -> Any:
    if item is None:
        return None
    return {"stocked": item.stocked, "reserved": item.reserved, "sold": item.sold}


def audit(
    data: AuditData,
    *,
    live: AuditData | None = None,
    live_later: AuditData | None = None,
    max_pending_age_s: float = 30.0,
) -> AuditReport:
    """Run every check over ``data``, and compare ``live`` with it when given (``live_later``:
    a live snapshot taken after ``data`` was read; see ``live_matches_store``)."""
    settle, in_flight = check_orders_settle(data, max_pending_age_s)
    checks = {
        "I1_no_oversell": check_stock(data),
        "I2_exactly_once_charge": check_charges(data),
        "I3_orders_settle": settle,
        "I4_events_recorded": check_events(data),
        "I6_dashboards": check_dashboards(data),
    }
    if live is not None:
        checks["live_matches_store"] = live_matches_store(live, data, live_later)
    return AuditReport(
        ok=all(check.ok for check in checks.values()), checks=checks, in_flight_orders=in_flight
    )
