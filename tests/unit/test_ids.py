"""Ids and the stable hash that routes keys to actors."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.ids import (
    PREFIXES,
    is_id,
    new_id,
    owner_index,
    product_id_for,
    sibling_id,
    stable_hash,
    stock_request_id_for,
)

pytestmark = pytest.mark.unit

ZERO_PRODUCT = "prd_" + "0" * 32
# Computed once with this code; a change here re-routes every stored row (route_key).
KNOWN_HASHES = {
    ZERO_PRODUCT: 3984770521884542500,
    "": 8238016292129134938,
    "usr_" + "f" * 32: 5905936203738407767,
}


def test_stable_hash_matches_known_values() -> None:
    for key, value in KNOWN_HASHES.items():
        assert stable_hash(key) == value


@pytest.mark.parametrize("seed", ["0", "12345"])
def test_stable_hash_is_the_same_in_another_process(seed: str) -> None:
    code = (
        "from marketplace.domain.ids import stable_hash\n"
        f"print(stable_hash({ZERO_PRODUCT!r}), hash({ZERO_PRODUCT!r}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert int(out[0]) == KNOWN_HASHES[ZERO_PRODUCT]


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=80), count=st.integers(min_value=1, max_value=64))
def test_stable_hash_range_and_owner(key: str, count: int) -> None:
    value = stable_hash(key)
    assert 0 <= value < 2**63  # fits a signed BIGINT
    assert stable_hash(key) == value
    assert 0 <= owner_index(key, count) < count
    assert owner_index(key, count) == value % count


def test_owner_index_spreads_evenly() -> None:
    rng = random.Random(2024)
    keys = [f"prd_{rng.getrandbits(128):032x}" for _ in range(10_000)]
    counts = Counter(owner_index(key, 4) for key in keys)
    assert set(counts) == {0, 1, 2, 3}
    for owner, count in counts.items():
        assert abs(count - 2500) <= 250, (owner, count)


def test_new_id_and_is_id() -> None:
    for prefix in PREFIXES:
        made = new_id(prefix)
        assert is_id(made, prefix)
        assert len(made) == 4 + 32
        others = [p for p in PREFIXES if p != prefix]
        assert not any(is_id(made, other) for other in others)
    assert new_id("prd") != new_id("prd")
    with pytest.raises(AssertionError):
        new_id("xyz")


@pytest.mark.parametrize(
    "value",
    [
        None,
        7,
        b"prd_" + b"0" * 32,
        "",
        "prd_",
        "prd_" + "0" * 31,
        "prd_" + "0" * 33,
        "prd_" + "G" * 32,
        "prd_" + "A" * 32,
        "PRD_" + "0" * 32,
        "prd-" + "0" * 32,
        " prd_" + "0" * 32,
        "prd_" + "0" * 32 + " ",
        "prd_" + "0" * 32 + "\n",
        "usr_" + "0" * 32,
    ],
)
def test_is_id_rejects(value: object) -> None:
    assert not is_id(value, "prd")


def test_sibling_id_keeps_the_key() -> None:
    order_id = new_id("ord")
    payment_id = sibling_id(order_id, "pay")
    assert is_id(payment_id, "pay")
    assert payment_id[4:] == order_id[4:]
    assert sibling_id(payment_id, "ord") == order_id


@given(st.text(max_size=200), st.text(max_size=200))
def test_a_stock_request_id_is_one_per_caller_product_and_key(key: str, other: str) -> None:
    made = stock_request_id_for("usr_a", ZERO_PRODUCT, key)
    assert made == stock_request_id_for("usr_a", ZERO_PRODUCT, key)
    assert is_id(made, "req") and len(made) <= 80  # the stock_movements.request_id column
    assert made != stock_request_id_for("usr_b", ZERO_PRODUCT, key)
    assert made != stock_request_id_for("usr_a", "prd_" + "1" * 32, key)
    assert (made == stock_request_id_for("usr_a", ZERO_PRODUCT, other)) == (key == other)


@given(st.text(max_size=200), st.text(max_size=200))
def test_a_listing_key_names_one_product_per_seller(key: str, other: str) -> None:
    made = product_id_for("usr_a", key)
    assert made == product_id_for("usr_a", key)
    assert is_id(made, "prd")  # routed and validated like any product id
    assert made != product_id_for("usr_b", key)
    assert (made == product_id_for("usr_a", other)) == (key == other)
