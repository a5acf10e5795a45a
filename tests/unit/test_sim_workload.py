"""The workload generator: operations, presets, behaviours and the mix, all seeded."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from marketplace.sim.behaviours import ProductPicker, carrier_ids
from marketplace.sim.market import generate_market
from marketplace.sim.operations import (
    OPERATION_KINDS,
    AddToCart,
    Browse,
    Checkout,
    MoveShipment,
    Operation,
    Restock,
    actor_of,
)
from marketplace.sim.presets import PRESETS, Activity, FlashWindow, Preset, SessionShape, preset
from marketplace.sim.workload import Workload

pytestmark = pytest.mark.unit

MARKET = generate_market(11, sellers=5, products=200, buyers=50)


def trace(name: str, seed: int, n: int = 3000) -> list[Operation]:
    workload = Workload(MARKET, preset(name), random.Random(seed))
    return [workload.next_op(i * 0.01) for i in range(n)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_same_seed_gives_the_same_operations(name: str) -> None:
    first = trace(name, 3)
    assert first == trace(name, 3)
    assert first != trace(name, 4)
    assert {op.kind for op in first} <= set(OPERATION_KINDS)


def test_operations_name_actors_from_the_market() -> None:
    buyers = {user.email for user in MARKET.buyers}
    sellers = {user.email for user in MARKET.sellers}
    carriers = set(carrier_ids(MARKET, preset("om").carriers))
    products = {product.product_id for product in MARKET.products}
    for op in trace("flash", 5):
        actor = actor_of(op)
        assert actor in buyers | sellers | carriers
        if isinstance(op, MoveShipment):
            assert actor in carriers
        if isinstance(op, Restock):
            owner = next(p for p in MARKET.products if p.product_id == op.product_id)
            assert actor == MARKET.sellers[owner.seller_index].email
        if hasattr(op, "product_id"):
            assert op.product_id in products


def test_the_om_mix_matches_its_declared_weights() -> None:
    om = preset("om")
    workload = Workload(MARKET, om, random.Random(1))
    n = 20_000
    counts = Counter(workload.activity()[0] for _ in range(n))
    for kind, share in om.shares().items():
        assert counts[kind] / n == pytest.approx(share, abs=0.01), kind
    assert om.shares()[Activity.SESSION] == pytest.approx(0.30)
    assert om.shares()[Activity.DELIVERY] == pytest.approx(0.60)


def test_om_sessions_all_check_out_and_browse_rarely_does() -> None:
    om = Workload(MARKET, preset("om"), random.Random(2))
    sessions = [ops for kind, ops in (om.activity() for _ in range(2000)) if kind == "session"]
    assert all(isinstance(ops[-1], Checkout) for ops in sessions)

    browse = Workload(MARKET, preset("browse"), random.Random(2))
    activities = [browse.activity()[1] for _ in range(10_000)]
    checkouts = sum(isinstance(ops[-1], Checkout) for ops in activities)
    assert checkouts / len(activities) == pytest.approx(0.05, abs=0.01)


def test_sessions_fill_the_cart_with_one_to_ten_units_per_line() -> None:
    workload = Workload(MARKET, preset("browse"), random.Random(9))
    adds = [op for op in workload.stream(range(5000)) if isinstance(op, AddToCart)]
    assert adds
    assert all(1 <= op.quantity <= 10 for op in adds)
    with pytest.raises(ValueError, match="quantity"):
        AddToCart("someone", "prd_x", 11)


def test_popular_products_are_picked_more_often() -> None:
    workload = Workload(MARKET, preset("om"), random.Random(4))
    picks = Counter(
        op.product_id for op in workload.stream(range(40_000)) if isinstance(op, Browse)
    )
    first, tenth = MARKET.products[0].product_id, MARKET.products[9].product_id
    assert picks[first] > 3 * picks[tenth] > 0


def test_a_flash_sale_multiplies_its_products_share_inside_the_window() -> None:
    flash = preset("flash")
    window = flash.flash
    assert window is not None
    workload = Workload(MARKET, flash, random.Random(6))
    target = MARKET.products[window.rank].product_id
    inside: Counter[bool] = Counter()
    total: Counter[bool] = Counter()
    for i in range(20_000):
        t = i / 400  # 0 to 50 s, the window is 10 to 40 s
        op = workload.next_op(t)
        if isinstance(op, (Browse, AddToCart)):
            total[window.active(t)] += 1
            inside[window.active(t)] += op.product_id == target
    share_in = inside[True] / total[True]
    share_out = inside[False] / total[False]
    assert share_in > 10 * share_out


def test_the_picker_honours_the_presets_zipf_exponent() -> None:
    uniform = ProductPicker(MARKET, zipf=0.0)
    rng = random.Random(0)
    picks = Counter(uniform.pick(rng).rank for _ in range(20_000))
    assert picks[0] < 2 * picks[9]


def test_unknown_presets_and_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="known presets: browse, checkout, flash, om, prices"):
        preset("nope")
    with pytest.raises(ValueError, match="checkout_probability"):
        SessionShape(checkout_probability=1.5)
    with pytest.raises(ValueError, match="mix weights"):
        Preset("x", "x", mix={Activity.SESSION: 0})
    with pytest.raises(ValueError, match="start_s"):
        FlashWindow(start_s=5, end_s=5, rank=0, multiplier=2)
    with pytest.raises(ValueError, match="beyond"):
        ProductPicker(MARKET, flash=FlashWindow(0, 1, rank=10_000, multiplier=2))
    with pytest.raises(ValueError, match="carriers"):
        Workload(MARKET, Preset("x", "x", mix={Activity.DELIVERY: 1}, carriers=0), random.Random())
