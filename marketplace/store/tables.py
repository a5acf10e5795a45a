"""SQLAlchemy Core tables. ``route_key`` is ``stable_hash`` of the row's routing key, so each
actor loads only the rows it owns (``route_key % count = index``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from marketplace.store.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(40)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Bumped by a password or role change; tokens carrying an older one are refused.
    Column("token_version", Integer, nullable=False, server_default="0"),
    # When it was last bumped: gateway replicas poll the recent changes (serve_app/revocations.py).
    Column("tokens_revoked_at", UtcDateTime(), nullable=True, index=True),
)

products = Table(
    "products",
    metadata,
    Column("id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("seller_id", ID, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(100), nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
)

stock_items = Table(
    "stock_items",
    metadata,
    Column("product_id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("stocked", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("sold", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
)

# Every stock adjustment, once per request id: stocked == sum(delta) is an audit check.
stock_movements = Table(
    "stock_movements",
    metadata,
    Column("request_id", String(80), primary_key=True),
    Column("product_id", ID, nullable=False, index=True),
    Column("delta", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", ID, primary_key=True),
    Column("product_id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("quantity", Integer, nullable=False),
    Column("state", String(16), nullable=False),
)

carts = Table(
    "carts",
    metadata,
    Column("buyer_id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("items", JSON, nullable=False),
    Column("version", Integer, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("buyer_id", ID, nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("failure_reason", String(64)),
    Column("items", JSON, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("card_token", String(100), nullable=False),
    Column("shipping_address", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # the seller view's frequent catch-up reads the orders changed lately
    Column("updated_at", UtcDateTime(), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    # A buyer's order list pages on it (keyset: newest first, the id breaking ties).
    Index("ix_orders_buyer_created", "buyer_id", "created_at", "id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("buyer_id", ID, nullable=False),
    Column("key", String(200), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("order_id", ID, nullable=False, index=True),
    # Keys expire: a coordinator loads those inside the window, and older ones are pruned.
    Column("created_at", UtcDateTime(), nullable=False, index=True),
    UniqueConstraint("buyer_id", "key", name="uq_idempotency_keys_buyer_key"),
)

product_keys = Table(
    "product_keys",
    metadata,
    Column("product_id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("seller_id", ID, nullable=False),
    Column("key", String(200), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("seller_id", "key", name="uq_product_keys_seller_key"),
)

# The Idempotency-Key of each PATCH, PUT or DELETE /v1/products/{id} that sent one: a row per
# caller and key (``id`` is ``product_write_id_for(caller, key)``), holding the product as that
# write left it, so a retry answers the same. Kept like checkouts' keys (IDEMPOTENCY_TTL_S):
# a shard loads those inside the window, and older ones are pruned.
product_write_keys = Table(
    "product_write_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("caller_id", ID, nullable=False),
    Column("key", String(200), nullable=False),
    Column("product_id", ID, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("product", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, index=True),
)

payments = Table(
    "payments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("order_id", ID, nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("captured_cents", BigInteger, nullable=False),
    Column("refunded_cents", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("order_id", ID, nullable=False, index=True),
    Column("operation", String(32), nullable=False),
    Column("account", String(32), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

shipments = Table(
    "shipments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("route_key", BigInteger, nullable=False, index=True),
    Column("order_id", ID, nullable=False, unique=True),
    Column("buyer_id", ID, nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("packages", JSON, nullable=False),
    Column("version", Integer, nullable=False),
)

# The seller view's projection: what each order meant to each seller at the version it saw.
seller_order_facts = Table(
    "seller_order_facts",
    metadata,
    Column("order_id", ID, primary_key=True),
    Column("seller_id", ID, primary_key=True),
    Column("order_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("items_sold", BigInteger, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("applied_at", UtcDateTime(), nullable=False),
    Index("ix_seller_order_facts_seller", "seller_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "position",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", String(40), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("subject", String(40), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("time", UtcDateTime(), nullable=False),
    Column("data", JSON, nullable=False),
    Column("published_at", UtcDateTime()),
    UniqueConstraint("subject", "sequence", name="uq_outbox_subject_sequence"),
    Index("ix_outbox_unpublished", "published_at", "position"),
)

# Inbound messages already applied, keyed by the sender's message id (exactly-once effects).
inbox = Table(
    "inbox",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column("routing_key", String(64), nullable=False),
    # Rows older than the inbox's retention are pruned (the consumer's loop).
    Column("processed_at", UtcDateTime(), nullable=False, index=True),
)
