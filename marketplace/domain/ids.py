"""Identifiers and the stable hash that routes a key to its owning actor."""

from __future__ import annotations

import hashlib
import re
import uuid

PREFIXES = ("usr", "prd", "ord", "shp", "pay", "stk", "evt", "req")
_ID_RE = re.compile(r"^(?P<prefix>[a-z]{3})_(?P<hex>[0-9a-f]{32})$")
_ORDER_NAMESPACE = uuid.UUID("6f1c1f5e-6d0b-4a9e-9c51-2b1f0a9d7e11")
_STOCK_REQUEST_NAMESPACE = uuid.UUID("0d2a8c3e-5b7f-4e61-8f0a-93c4d1e7b25a")
_PRODUCT_NAMESPACE = uuid.UUID("4b9e2f61-0c3d-4a7e-b8d5-6e1f2a3c9d07")
_RENEWED_ORDER_NAMESPACE = uuid.UUID("a3e5c7d9-1b2f-4c6e-8a0d-5f7b9c1e3a64")
_PRODUCT_WRITE_NAMESPACE = uuid.UUID("c8f1d2e4-7a9b-4c3d-9e5f-1a2b3c4d5e6f")


def new_id(prefix: str) -> str:
    """A fresh random id such as ``prd_<32 hex>``."""
    assert prefix in PREFIXES, prefix
    return f"{prefix}_{uuid.uuid4().hex}"


def is_id(value: object, prefix: str) -> bool:
    """Whether ``value`` is a well-formed id with the given prefix."""
    if not isinstance(value, str):
        return False
    match = _ID_RE.fullmatch(value)
    return match is not None and match.group("prefix") == prefix


def sibling_id(some_id: str, prefix: str) -> str:
    """The id of the aggregate that shares ``some_id``'s key under another prefix.

    A payment and a shipment belong to exactly one order, a stock item to one product:
    deriving their ids keeps them on the same routing key without a lookup.
    """
    return f"{prefix}_{some_id.split('_', 1)[1]}"


def order_id_for(buyer_id: str, idempotency_key: str) -> str:
    """The order id an idempotency key stands for, so replays meet at one coordinator."""
    return "ord_" + uuid.uuid5(_ORDER_NAMESPACE, f"{buyer_id}\x1f{idempotency_key}").hex


def renewed_order_id(buyer_id: str, idempotency_key: str, renewal: int) -> str:
    """The id of the ``renewal``-th order an idempotency key placed after its window had
    passed (``order_id_for`` is the first's): derived, so a retry of a renewed checkout whose
    answer was lost picks the same id again."""
    name = f"{buyer_id}\x1f{idempotency_key}\x1f{renewal}"
    return "ord_" + uuid.uuid5(_RENEWED_ORDER_NAMESPACE, name).hex


def product_id_for(seller_id: str, idempotency_key: str) -> str:
    """The product id a seller's Idempotency-Key stands for, so a retried listing meets the
    product the first attempt made (on the same catalog shard, under the same lock)."""
    return "prd_" + uuid.uuid5(_PRODUCT_NAMESPACE, f"{seller_id}\x1f{idempotency_key}").hex


def stock_request_id_for(caller_id: str, product_id: str, idempotency_key: str) -> str:
    """The stock movement's request id an Idempotency-Key stands for: one per caller and
    product, so a retried restock or write-off is applied once."""
    name = f"{caller_id}\x1f{product_id}\x1f{idempotency_key}"
    return "req_" + uuid.uuid5(_STOCK_REQUEST_NAMESPACE, name).hex


def product_write_id_for(caller_id: str, idempotency_key: str) -> str:
    """The id of the product write (PATCH, PUT or DELETE) a caller's Idempotency-Key stands
    for: one per caller, whatever the product, so the key sent again to another product is
    recognised as reused (the store's primary key meets it, whichever shard owns that product)."""
    name = f"{caller_id}\x1f{idempotency_key}"
    return "req_" + uuid.uuid5(_PRODUCT_WRITE_NAMESPACE, name).hex


def stable_hash(key: str) -> int:
    """A process-independent 63-bit hash (unlike ``hash``, which is salted per process).

    It fits a signed BIGINT, so the store keeps it as ``route_key`` and an actor can load
    just its own rows with ``route_key % count = index``.
    """
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


def owner_index(key: str, count: int) -> int:
    """Which of ``count`` actors owns ``key``."""
    return stable_hash(key) % count
