"""Settings from the environment (prefix ``MARKETPLACE_``), see DESIGN.md section 8."""

from __future__ import annotations

import ipaddress
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

PLACEHOLDER_SECRET = "change-me"
# Values shipped in examples and earlier defaults: refused wherever the gateway can be reached
# from elsewhere or the environment is not development.
PLACEHOLDERS = frozenset({PLACEHOLDER_SECRET, "change-me-admin-password", "admin-password"})
MIN_SECRET_BYTES = 32


class MissingSecret(ValueError):
    """A secret the settings do not hold (neither configured nor generated for this run)."""


# The settings that say how many actors of a kind there are (one of each other kind).
ACTOR_COUNTS = (
    "catalog_shards",
    "inventory_partitions",
    "cart_shards",
    "order_coordinators",
    "payment_processors",
    "shipment_coordinators",
)


class Durability(StrEnum):
    """How actors persist a state change before they reply."""

    SYNC = "sync"  # commit before reply (group commit allowed)
    ASYNC = "async"  # write-behind: reply first, commit soon after
    NONE = "none"  # memory only, for simulations


class Topology(StrEnum):
    """How the actors are laid out in processes (DESIGN.md section 4)."""

    DISTRIBUTED = "distributed"  # one Ray actor per role and partition
    COLOCATED = "colocated"  # one Ray actor ("cell") per partition index hosts every role


class Consistency(StrEnum):
    """What a product read or search may answer when the catalog has read replicas
    (``actors/README.md``, "Catalog replicas and consistency")."""

    STRONG = "strong"  # never older than a write answered before the read began
    SESSION = "session"  # read-your-writes and monotonic reads per client, by a session token
    EVENTUAL = "eventual"  # any replica: older by the replication lag at most


class Settings(BaseSettings):
    """Every knob of the runtime. Counts of each actor kind decide the sharding."""

    model_config = SettingsConfigDict(env_prefix="MARKETPLACE_", extra="ignore")

    environment: str = "development"
    database_url: str = Field(default="", description="SQLAlchemy URL; default .marketplace/")
    amqp_url: str | None = None
    events_exchange: str = Field(default="marketplace.events", min_length=1, max_length=200)
    inbound_exchange: str = Field(default="marketplace.inbound", min_length=1, max_length=200)
    inbound_queue: str = Field(
        default="marketplace.inbound",
        min_length=1,
        max_length=200,
        description="DLX/DLQ: +.dlx/.dlq",
    )
    event_archive: bool = Field(
        default=True,
        description="bind the queue <events_exchange>.archive with # so every event routes",
    )
    event_archive_max_length: int = Field(
        default=100_000,
        ge=1,
        description="the archive keeps this many newest events (x-max-length, drop-head)",
    )
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(default=0.1, gt=0)
    relay_mark_delay_s: float = Field(
        default=0.0, ge=0, description="fault injection: pause between confirms and marking"
    )
    inbound_prefetch: int = Field(default=32, ge=1, le=1000)
    inbound_max_attempts: int = Field(default=5, ge=1, le=100)
    ray_address: str | None = None
    namespace: str = "marketplace"
    durability: Durability = Durability.SYNC
    topology: Topology = Field(
        default=Topology.DISTRIBUTED,
        description="distributed: one actor process per role and partition; colocated: one "
        "process (cell-<i>) per partition index hosts the roles of index i of every kind",
    )
    metrics: bool = Field(
        default=True,
        description="record metrics through Ray (GET /metrics, the nodes' metrics ports); "
        "false records nothing, for measuring what recording costs",
    )
    trace_sample: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="the fraction of requests the gateway traces across every actor they reach "
        "(OpenTelemetry; 0 builds no span at all)",
    )
    trace_dir: str = Field(
        default="", description="where span files go; default .marketplace/traces/"
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="send spans to this OTLP/HTTP traces URL (e.g. "
        "http://otel-collector:4318/v1/traces) instead of files",
    )
    batch_max_calls: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="the most calls one batched Ray call carries (actors.batching); 1 sends "
        "every call as a Ray call of its own, to see what batching saves",
    )
    sqlite_write_lock: bool = Field(
        default=True,
        description="queue SQLite writers on a file lock instead of SQLite's sleeping busy wait",
    )

    catalog_shards: int = Field(default=1, ge=1, le=256)
    catalog_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="with sync durability, the listing keys (product id -> request digest) a "
        "catalog shard keeps in memory; others are read back from the store when asked for",
    )
    product_lease_s: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="how long a client may answer product reads from its own copy; product "
        "writes answer once every holder has dropped its copy, or this much later at most, so a "
        "read that starts after a write's answer sees it (0: every read asks the catalog shard)",
    )
    catalog_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description="read replicas per catalog shard, each a Ray actor of its own fed by the "
        "shard's change stream; 0 creates none and every read goes to the shards",
    )
    catalog_consistency: Consistency = Field(
        default=Consistency.STRONG,
        description="strong: product reads and searches go to the shards (leased copies); "
        "session: read-your-writes and monotonic reads per client carrying the session token; "
        "eventual: any replica answers (with no replicas every mode reads the shards)",
    )
    replication_delay_ms: float = Field(
        default=0,
        ge=0,
        le=60_000,
        description="a replica applies each change only this long after its shard made it: "
        "widens the replication lag so that one machine shows stale reads",
    )
    inventory_partitions: int = Field(default=1, ge=1, le=256)
    inventory_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="with sync durability, the settled orders (and, as many, restock request "
        "ids) an inventory partition keeps in memory beyond its held reservations; others are "
        "read back from the store when asked for",
    )
    cart_shards: int = Field(default=1, ge=1, le=256)
    order_coordinators: int = Field(default=1, ge=1, le=256)
    order_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="with sync durability, each order coordinator keeps in memory the orders "
        "whose saga has work left and at most this many others (least recently used out "
        "first), reading any other from the store; with async or none it keeps every order",
    )
    payment_processors: int = Field(default=1, ge=1, le=256)
    payment_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="with sync durability, the payments each payment processor keeps in memory "
        "(least recently used out first), reading any other from the store; with async or none "
        "it keeps every payment",
    )
    shipment_coordinators: int = Field(default=1, ge=1, le=256)
    shipment_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="with sync durability, the shipments each shipment coordinator keeps in "
        "memory (least recently used out first), reading any other from the store; with async "
        "or none it keeps every shipment",
    )
    seller_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="with sync durability, the orders whose per-seller facts the seller view "
        "keeps in memory (least recently used out first) beside its per-seller totals, reading "
        "any other from the store; with async or none it keeps every order's facts",
    )
    actor_num_cpus: float = Field(default=0.05, ge=0)
    ray_num_cpus: int | None = Field(default=None, ge=1)
    ray_include_dashboard: bool = Field(
        default=False, description="start the Ray dashboard with a local Ray (costs memory, CPU)"
    )

    payment_latency_ms: float = Field(default=0.0, ge=0)
    payment_decline_rate: float = Field(default=0.0, ge=0, le=1)
    saga_step_timeout_s: float = Field(default=30.0, gt=0)
    idempotency_ttl_s: float = Field(
        default=86_400.0,
        gt=0,
        description="how long an Idempotency-Key of a checkout stands for its order (24 h, as "
        "payment APIs keep them), and one of a product write for the product as it left it; "
        "after it, the same key places a new order or makes a new write",
    )
    outbox_retention_s: float = Field(
        default=7 * 86_400.0,
        gt=0,
        description="published events stay in the outbox this long, then the relay prunes "
        "them (unpublished ones are never pruned)",
    )
    inbox_retention_s: float = Field(
        default=7 * 86_400.0,
        gt=0,
        description="inbound message ids are remembered this long: a redelivery within it "
        "takes no effect again",
    )
    retention_interval_s: float = Field(
        default=60.0, gt=0, description="how often expired keys and old events are pruned"
    )

    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 signing key, 32 bytes or more; unset, `marketplace up` generates "
        "one into .marketplace/secrets.json (development only)",
    )
    jwt_ttl_s: int = Field(default=900, ge=1)
    revocation_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often each gateway replica reads the store's token revocations "
        "(password and role changes): how long an old token still works on another replica",
    )
    admin_email: str = "admin@marketplace.local"
    admin_password: SecretStr | None = Field(
        default=None,
        description="unset: `marketplace up` generates one into .marketplace/secrets.json; "
        "with neither, no admin account is created",
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    fast_ingress: bool = Field(
        default=True, description="use Serve's HAProxy ingress where available"
    )
    access_log: bool = False
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    checkout_wait_s: float = Field(default=10.0, gt=0, description="then answer pending")
    login_rate_per_minute: int = Field(
        default=30, ge=1, description="password attempts per account from one client address"
    )
    login_rate_per_address_per_minute: int = Field(
        default=600, ge=1, description="password attempts from one client address, any accounts"
    )
    registration_rate_per_address_per_minute: int = Field(default=600, ge=1)
    registration_rate_per_minute: int = Field(
        default=6000, ge=1, description="registrations from everyone together"
    )
    trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        le=10,
        description="proxies in front of the gateway that append the client's address to "
        "X-Forwarded-For (0: the address is the connection's)",
    )
    checkout_rate_per_minute: int = Field(
        default=600,
        ge=1,
        description="checkouts per buyer; each gateway replica keeps its share of it (the rate "
        "divided by the live replicas, counted by their heartbeats)",
    )
    gateway_heartbeat_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="how often each gateway replica tells the Limits deployment it is alive; "
        "one silent for three beats is no longer counted",
    )

    gateway_min_replicas: int = Field(default=1, ge=1)
    gateway_max_replicas: int = Field(default=2, ge=1)
    gateway_target_ongoing_requests: float = Field(default=32, gt=0)
    gateway_num_cpus: float = Field(default=0.1, ge=0)
    gateway_look_back_period_s: float = Field(
        default=30.0, gt=0, description="Serve autoscaling's window of request counts (its default)"
    )
    auth_min_replicas: int = Field(default=1, ge=1)
    auth_max_replicas: int = Field(default=2, ge=1)
    auth_target_ongoing_requests: float = Field(default=2, gt=0)
    auth_num_cpus: float = Field(default=0.1, ge=0)
    auth_max_ongoing_requests: int = Field(
        default=64,
        ge=1,
        description="hash and verify calls one auth replica accepts at once; the rest wait in "
        "its own first-come queue (the hashing threads) instead of in the gateways' routers, "
        "which back off and retry while every replica is full",
    )
    upscale_delay_s: float = Field(default=2.0, ge=0)
    downscale_delay_s: float = Field(default=15.0, ge=0)

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        if not self.exposed:
            return self
        where = (
            f"the environment is {self.environment!r}"
            if self.environment != "development"
            else f"the gateway binds {self.http_host}, not loopback"
        )
        if self.jwt_secret is None:
            if self.environment != "development":
                raise ValueError(
                    f"MARKETPLACE_JWT_SECRET must be set ({MIN_SECRET_BYTES} bytes or more) when "
                    f"{where}: every replica has to sign with the same key"
                )
        else:
            value = self.jwt_secret.get_secret_value()
            if value in PLACEHOLDERS or len(value.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"MARKETPLACE_JWT_SECRET is a placeholder or shorter than {MIN_SECRET_BYTES} "
                    f"bytes, which is refused when {where}; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
        if self.admin_password is not None and (
            self.admin_password.get_secret_value() in PLACEHOLDERS
        ):
            raise ValueError(
                f"MARKETPLACE_ADMIN_PASSWORD is a published placeholder, refused when {where}"
            )
        return self

    @property
    def exposed(self) -> bool:
        """Whether weak secrets are refused: outside development, or where the gateway binds
        an address other machines may reach."""
        return self.environment != "development" or not _loopback(self.http_host)

    def signing_secret(self) -> str:
        """The JWT signing key; ``MissingSecret`` when none is configured or generated."""
        if self.jwt_secret is None:
            raise MissingSecret(
                "no JWT signing key: set MARKETPLACE_JWT_SECRET, or start the marketplace with "
                "`marketplace up`, which generates one into .marketplace/secrets.json"
            )
        return self.jwt_secret.get_secret_value()

    def admin_credentials(self) -> tuple[str, str] | None:
        """The admin's email and password, or None when no password is configured."""
        if self.admin_password is None:
            return None
        return self.admin_email, self.admin_password.get_secret_value()

    def with_generated_secrets(self) -> Settings:
        """These settings with a random signing key and admin password where none is set:
        for a run that starts its own gateway and logs in itself (an experiment, a
        benchmark), so nothing needs to be kept."""
        update: dict[str, SecretStr] = {}
        if self.jwt_secret is None:
            update["jwt_secret"] = SecretStr(secrets.token_urlsafe(48))
        if self.admin_password is None:
            update["admin_password"] = SecretStr(secrets.token_urlsafe(18))
        return self.model_copy(update=update) if update else self

    @property
    def state_dir(self) -> Path:
        """Where the embedded default keeps its files (SQLite, runtime state)."""
        return Path.cwd() / ".marketplace"

    def actor_counts(self) -> dict[str, int]:
        """How many actors of each sharded kind, by setting name (``ACTOR_COUNTS``): what a
        process must share with a running marketplace to route as it does."""
        return self.model_dump(include=set(ACTOR_COUNTS))

    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL, defaulting to a SQLite file under ``.marketplace/``."""
        if self.database_url:
            return to_async_url(self.database_url)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{self.state_dir / 'marketplace.db'}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def to_async_url(url: str) -> str:
    """Map plain SQLite / PostgreSQL URLs onto their async drivers."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***`` (for logs, panels and manifests)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
