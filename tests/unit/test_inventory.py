"""Stock arithmetic (invariant I1) as a hypothesis state machine checked against a model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from marketplace.domain.errors import Conflict, InsufficientStock, InvalidInput
from marketplace.domain.inventory import MAX_STOCK_DELTA, StockItem
from tests.unit.factories import hex_id

pytestmark = pytest.mark.unit

PRODUCT = hex_id("prd", 7)

# Mostly small numbers so that operations often succeed and often hit a boundary,
# plus values that must always be refused whatever the state.
small = st.integers(min_value=-5, max_value=40)
deltas = st.one_of(
    st.integers(min_value=-60, max_value=60),
    st.sampled_from([MAX_STOCK_DELTA, -MAX_STOCK_DELTA, MAX_STOCK_DELTA + 1, -MAX_STOCK_DELTA - 1]),
)
not_ints = st.sampled_from([True, False, 1.0, 2.5, "3", None])


class StockMachine(RuleBasedStateMachine):
    """Applies random operations to a StockItem and to an independent model of its counters."""

    item: StockItem

    @initialize(stocked=st.integers(min_value=0, max_value=50))
    def start(self, stocked: int) -> None:
        self.item = StockItem(product_id=PRODUCT, stocked=stocked)
        self.stocked, self.reserved, self.sold, self.version = stocked, 0, 0, 0

    # --- the model's own arithmetic -------------------------------------------------------

    def _model_available(self) -> int:
        return self.stocked - self.reserved - self.sold

    def _apply(
        self,
        operation: str,
        argument: Any,
        expected_error: type[Exception] | None,
        expected: tuple[int, int, int] | None,
    ) -> None:
        """Run ``operation`` and check it against the model's verdict."""
        before = self.item
        snapshot = before.model_dump()
        if expected_error is not None:
            with pytest.raises(expected_error) as info:
                getattr(before, operation)(argument)
            if expected_error is InvalidInput:
                # InsufficientStock is a Conflict, never an InvalidInput, and vice versa.
                assert not isinstance(info.value, Conflict)
            # A refused operation leaves the item as it was; we keep the previous object.
            assert before.model_dump() == snapshot
            return
        after = getattr(before, operation)(argument)
        assert isinstance(after, StockItem)
        assert after is not before
        assert before.model_dump() == snapshot, "the old object must not be mutated"
        assert expected is not None
        self.stocked, self.reserved, self.sold = expected
        self.version += 1
        assert after.version == before.version + 1
        self.item = after

    # --- rules ----------------------------------------------------------------------------

    @rule(delta=deltas)
    def adjust(self, delta: int) -> None:
        if delta == 0 or abs(delta) > MAX_STOCK_DELTA:
            self._apply("adjust", delta, InvalidInput, None)
        elif self._model_available() + delta < 0:
            self._apply("adjust", delta, InsufficientStock, None)
        else:
            self._apply("adjust", delta, None, (self.stocked + delta, self.reserved, self.sold))

    @rule(quantity=small)
    def reserve(self, quantity: int) -> None:
        if quantity <= 0:
            self._apply("reserve", quantity, InvalidInput, None)
        elif quantity > self._model_available():
            self._apply("reserve", quantity, InsufficientStock, None)
        else:
            new = (self.stocked, self.reserved + quantity, self.sold)
            self._apply("reserve", quantity, None, new)

    @rule(quantity=small)
    def commit(self, quantity: int) -> None:
        if quantity <= 0 or quantity > self.reserved:
            self._apply("commit", quantity, InvalidInput, None)
        else:
            new = (self.stocked, self.reserved - quantity, self.sold + quantity)
            self._apply("commit", quantity, None, new)

    @rule(quantity=small)
    def release(self, quantity: int) -> None:
        if quantity <= 0 or quantity > self.reserved:
            self._apply("release", quantity, InvalidInput, None)
        else:
            new = (self.stocked, self.reserved - quantity, self.sold)
            self._apply("release", quantity, None, new)

    @rule(quantity=small)
    def unsell(self, quantity: int) -> None:
        if quantity <= 0 or quantity > self.sold:
            self._apply("unsell", quantity, InvalidInput, None)
        else:
            new = (self.stocked, self.reserved, self.sold - quantity)
            self._apply("unsell", quantity, None, new)

    @rule(
        operation=st.sampled_from(["adjust", "reserve", "commit", "release", "unsell"]),
        value=not_ints,
    )
    def non_integer(self, operation: str, value: Any) -> None:
        self._apply(operation, value, InvalidInput, None)

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def counters_are_sane(self) -> None:
        item = self.item
        assert item.stocked >= 0
        assert item.reserved >= 0
        assert item.sold >= 0
        assert item.available >= 0
        assert item.sold + item.reserved + item.available == item.stocked

    @invariant()
    def matches_model(self) -> None:
        item = self.item
        assert (item.stocked, item.reserved, item.sold, item.version) == (
            self.stocked,
            self.reserved,
            self.sold,
            self.version,
        )
        assert item.product_id == PRODUCT


TestStockMachine = StockMachine.TestCase
TestStockMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


OPS = ["adjust", "reserve", "commit", "release", "unsell"]


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=30),
    ops=st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(min_value=-40, max_value=40)), max_size=60
    ),
)
def test_random_op_lists_keep_i1_and_bump_versions(start: int, ops: list[tuple[str, int]]) -> None:
    """The list-of-ops variant: whatever happens, I1 holds and versions only go up on change."""
    item = StockItem(product_id=PRODUCT, stocked=start)
    successes = 0
    for operation, argument in ops:
        try:
            new = getattr(item, operation)(argument)
        except (InsufficientStock, InvalidInput):
            continue
        assert new.version == item.version + 1
        # Exactly one counter pair moved by ``argument``, in the direction the operation says.
        moved = (
            new.stocked - item.stocked,
            new.reserved - item.reserved,
            new.sold - item.sold,
        )
        expected = {
            "adjust": (argument, 0, 0),
            "reserve": (0, argument, 0),
            "commit": (0, -argument, argument),
            "release": (0, -argument, 0),
            "unsell": (0, 0, -argument),
        }[operation]
        assert moved == expected
        item = new
        successes += 1
        assert min(item.stocked, item.reserved, item.sold, item.available) >= 0
        assert item.sold + item.reserved + item.available == item.stocked
    assert item.version == successes


def test_insufficient_stock_is_a_conflict_with_details() -> None:
    item = StockItem(product_id=PRODUCT, stocked=3).reserve(2)
    with pytest.raises(InsufficientStock) as info:
        item.reserve(2)
    assert isinstance(info.value, Conflict)
    assert info.value.status == 409
    assert info.value.details == {"product_id": PRODUCT, "available": 1}
    with pytest.raises(InsufficientStock):
        item.adjust(-2)
    assert item.adjust(-1).available == 0


@pytest.mark.parametrize("delta", [0, True, 1.0, MAX_STOCK_DELTA + 1, -(MAX_STOCK_DELTA + 1)])
def test_adjust_refuses_bad_deltas(delta: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        StockItem(product_id=PRODUCT, stocked=5).adjust(delta)
    assert info.value.details["field"] == "delta"


def test_full_life_of_a_reservation() -> None:
    item = StockItem(product_id=PRODUCT).adjust(10)
    item = item.reserve(4).commit(3).release(1)
    assert (item.stocked, item.reserved, item.sold, item.available) == (10, 0, 3, 7)
    item = item.unsell(3)
    assert (item.stocked, item.reserved, item.sold, item.available) == (10, 0, 0, 10)
    assert item.version == 5


def test_stock_item_is_frozen() -> None:
    item = StockItem(product_id=PRODUCT, stocked=1)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        item.stocked = 5  # type: ignore[misc]
    assert item.stocked == 1
