"""The gateway's shared dependencies (serve_app/deps.py) on an app built around a fake replica:
the caller, the one Idempotency-Key dependency (required for checkout, optional for listings and
stock), and the body limit given by the replica's settings. No Ray: the client is a fake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from actors.client import MarketplaceClient
from marketplace.config import Settings
from marketplace.domain.catalog import Product, ProductDraft
from marketplace.domain.session_token import CatalogSession
from marketplace.domain.users import Principal, Role, User
from serve_app.gateway import build_api
from serve_app.metrics import GatewayMetrics
from serve_app.rate_limits import LocalSignInLimits, ReplicaShare, SignInPolicy
from serve_app.replica import Replica
from serve_app.replica_count import LiveReplicas
from serve_app.revocations import Revocations
from serve_app.tokens import TokenService

pytestmark = pytest.mark.unit

SELLER = User(id="usr_s", email="s@example.com", name="S", role=Role.SELLER, password_hash="x")
BUYER = User(id="usr_b", email="b@example.com", name="B", role=Role.BUYER, password_hash="x")
PRODUCT = {"name": "Mug", "category": "kitchen", "price_cents": 900}
ORDER = {
    "payment": {"card_token": "tok_visa"},
    "shipping_address": {
        "name": "B",
        "street": "1 Road",
        "city": "Town",
        "zip": "12345",
        "country": "DE",
    },
}


class FakeClient:
    """Records the keys products are listed with and the catalog sessions reads and listings
    carry; holds nothing. Its catalog has two shards, and a read raises shard 0 to seq 7."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.sessions: list[dict[int, int]] = []

    def held_product(self, product_id: str) -> Product | None:
        return None

    def catalog_session(self, header: str | None) -> CatalogSession:
        return CatalogSession.from_header(header, shards=2)

    async def get_product(self, product_id: str, *, session: CatalogSession) -> Product:
        self.sessions.append(dict(session.token))
        session.saw(0, 7)
        return Product(
            id=product_id, seller_id="usr_s", description="", version=3, active=True, **PRODUCT
        )

    async def create_product(
        self,
        seller: Principal,
        draft: ProductDraft,
        initial_stock: int = 0,
        *,
        idempotency_key: str | None = None,
        session: CatalogSession | None = None,
    ) -> Product:
        self.keys.append(idempotency_key)
        return Product(
            id="prd_1", seller_id=seller.id, description="", version=1, active=True, **PRODUCT
        )


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


async def _unanswered(replica_id: str) -> int | None:
    return None


async def _no_revocations(since: object) -> list[Any]:
    return []


TOKENS = TokenService("s" * 40, ttl_s=900)


def replica_over(
    settings: Settings, client: object, auth: object, secret: str, revocations: Revocations
) -> Replica:
    """One replica's configuration over fakes of its client and Auth handle."""
    checkout_limit = ReplicaShare(settings.checkout_rate_per_minute)
    return Replica(
        settings=settings,
        client=cast(MarketplaceClient, client),
        auth=cast(Any, auth),
        tokens=TokenService(secret, settings.jwt_ttl_s, revocations),
        revocations=revocations,
        sign_in=LocalSignInLimits(
            SignInPolicy.of(
                login_per_account=settings.login_rate_per_minute,
                login_per_address=settings.login_rate_per_address_per_minute,
                registration_per_address=settings.registration_rate_per_address_per_minute,
                registration_overall=settings.registration_rate_per_minute,
            )
        ),
        checkout_limit=checkout_limit,
        # No Limits deployment here: the share stays the whole rate (one replica).
        live=LiveReplicas(_unanswered, settings.gateway_heartbeat_s, (checkout_limit,)),
        metrics=GatewayMetrics(settings.namespace),
    )


@contextmanager
def served_in_process(
    settings: Settings, client: object, auth: object, secret: str, revocations: Revocations
) -> Iterator[TestClient]:
    """One replica's routes over fakes of its client and Auth handle, in process."""
    replica = replica_over(settings, client, auth, secret, revocations)
    with TestClient(build_api(replica)) as http:
        yield http


def no_revocations() -> Revocations:
    """Revocations that never name a token (polled from nothing)."""
    return Revocations(_no_revocations, token_ttl_s=900, poll_s=60)


@contextmanager
def gateway_over(client: object, settings: Settings) -> Iterator[TestClient]:
    """The gateway's routes over ``client`` (a fake of the marketplace client), in process."""
    # No route here hashes or checks a password: no Auth handle.
    with served_in_process(settings, client, None, TOKENS.secret, no_revocations()) as http:
        yield http


@pytest.fixture
def http(fake: FakeClient) -> Iterator[TestClient]:
    with gateway_over(fake, Settings(max_body_bytes=2048)) as client:
        yield client


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.issue(user)}"}


def problem(reply: Any, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    return cast(dict[str, Any], reply.json())


def test_a_missing_or_bad_token_is_401(http: TestClient) -> None:
    assert problem(http.post("/v1/products", json=PRODUCT), 401)["code"] == "unauthenticated"
    reply = http.post("/v1/products", json=PRODUCT, headers={"Authorization": "Bearer nope"})
    assert problem(reply, 401)["code"] == "invalid_token"


def test_an_optional_key_is_passed_on_or_left_out(http: TestClient, fake: FakeClient) -> None:
    seller = bearer(SELLER)
    assert http.post("/v1/products", json=PRODUCT, headers=seller).status_code == 201
    keyed = {**seller, "Idempotency-Key": "list-1"}
    assert http.post("/v1/products", json=PRODUCT, headers=keyed).status_code == 201
    assert fake.keys == [None, "list-1"]


@pytest.mark.parametrize("path", ["/v1/products", "/v1/products/prd_1/stock"])
def test_an_optional_key_that_is_blank_or_too_long_is_422(http: TestClient, path: str) -> None:
    seller = bearer(SELLER)
    body = PRODUCT if path == "/v1/products" else {"delta": 1}
    blank = http.post(path, json=body, headers={**seller, "Idempotency-Key": "  "})
    assert problem(blank, 422) == {
        "type": "https://marketplace.dev/problems/idempotency_key_blank",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "the Idempotency-Key header is blank",
        "code": "idempotency_key_blank",
    }
    long = http.post(path, json=body, headers={**seller, "Idempotency-Key": "k" * 201})
    refused = problem(long, 422)
    assert refused["code"] == "validation_failed"
    assert refused["errors"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize("key", [None, "", "   "])
def test_checkout_without_a_usable_key_is_422(http: TestClient, key: str | None) -> None:
    headers = bearer(BUYER)
    if key is not None:
        headers["Idempotency-Key"] = key
    refused = problem(http.post("/v1/orders", json=ORDER, headers=headers), 422)
    assert refused["code"] == "idempotency_key_required"
    assert refused["detail"] == "the Idempotency-Key header is required"


@pytest.mark.parametrize("path", ["/v1/orders", "/v1/products"])
def test_a_key_holding_nul_is_422_and_reaches_nobody(
    http: TestClient, fake: FakeClient, path: str
) -> None:
    """HTTP/1.1 servers refuse U+0000 in a header; in process (as behind any ASGI server that
    lets it through) it must still not reach the store, which PostgreSQL would answer with a
    500."""
    user, body = (BUYER, ORDER) if path == "/v1/orders" else (SELLER, PRODUCT)
    headers = {**bearer(user), "Idempotency-Key": "key\x00one"}
    refused = problem(http.post(path, json=body, headers=headers), 422)
    assert refused["code"] == "validation_failed"
    assert refused["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert fake.keys == []


def test_checkout_with_a_key_over_200_characters_is_422(http: TestClient) -> None:
    headers = {**bearer(BUYER), "Idempotency-Key": "k" * 201}
    refused = problem(http.post("/v1/orders", json=ORDER, headers=headers), 422)
    assert refused["code"] == "validation_failed"


@pytest.mark.parametrize(
    ("path", "body", "user", "key"),
    [
        ("/v1/orders", ORDER, SELLER, None),
        ("/v1/orders", ORDER, SELLER, "  "),
        ("/v1/products", PRODUCT, BUYER, "  "),
        ("/v1/products/prd_1/stock", {"delta": 1}, BUYER, "  "),
    ],
)
def test_the_wrong_role_is_403_whatever_the_key(
    http: TestClient, path: str, body: dict[str, Any], user: User, key: str | None
) -> None:
    """The role is checked before the key, as the contract has always answered."""
    headers = bearer(user) | ({} if key is None else {"Idempotency-Key": key})
    assert problem(http.post(path, json=body, headers=headers), 403)["code"] == "forbidden"


@pytest.mark.parametrize(("path", "key"), [("/v1/orders", None), ("/v1/products", "  ")])
def test_an_invalid_body_is_reported_before_the_key(
    http: TestClient, path: str, key: str | None
) -> None:
    user = BUYER if path == "/v1/orders" else SELLER
    headers = bearer(user) | ({} if key is None else {"Idempotency-Key": key})
    refused = problem(http.post(path, json={"unexpected": 1}, headers=headers), 422)
    assert refused["code"] == "validation_failed"


def test_the_body_limit_is_the_replicas(http: TestClient) -> None:
    big = {**PRODUCT, "description": "d" * 3000}
    assert problem(http.post("/v1/products", json=big, headers=bearer(SELLER)), 413)


def _request(hops: int, forwarded: list[str], peer: str = "10.0.0.9") -> Any:
    from types import SimpleNamespace

    from starlette.requests import Request

    replica = SimpleNamespace(settings=Settings(trusted_proxy_hops=hops))
    app = SimpleNamespace(state=SimpleNamespace(replica=replica))
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "headers": headers, "client": (peer, 1234), "app": app})


@pytest.mark.parametrize(
    ("hops", "forwarded", "address"),
    [
        (0, ["6.6.6.6"], "10.0.0.9"),  # no proxy trusted: a client's header is ignored
        (1, ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # what our proxy appended, not what came before
        (2, ["6.6.6.6, 1.2.3.4", "10.1.1.1"], "1.2.3.4"),  # headers on several lines are one
        (2, ["1.2.3.4"], "10.0.0.9"),  # fewer than the trusted hops: the connection's
        (1, [], "10.0.0.9"),
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(
    hops: int, forwarded: list[str], address: str
) -> None:
    from serve_app.deps import client_address

    assert client_address(_request(hops, forwarded)) == address


def test_a_product_read_passes_the_session_on_and_answers_it_raised(
    http: TestClient, fake: FakeClient
) -> None:
    reply = http.get("/v1/products/prd_1", headers={"X-Catalog-Session": "s1.1-4"})
    assert reply.status_code == 200, reply.text
    assert fake.sessions == [{1: 4}]
    assert reply.headers["X-Catalog-Session"] == "s1.0-7.1-4"
    assert reply.headers["ETag"] == '"3"'


@pytest.mark.parametrize("value", ["nonsense", "s1.5-1", "s1.0-1-2", "s1." + "0-1." * 3000])
def test_an_unreadable_session_header_counts_as_none(
    http: TestClient, fake: FakeClient, value: str
) -> None:
    reply = http.get("/v1/products/prd_1", headers={"X-Catalog-Session": value})
    assert reply.status_code == 200, reply.text
    assert fake.sessions == [{}]
    assert reply.headers["X-Catalog-Session"] == "s1.0-7"


def test_the_openapi_documents_the_session_header_with_an_example(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    read = paths["/v1/products/{product_id}"]["get"]
    (sent,) = [p for p in read["parameters"] if p["name"] == "X-Catalog-Session"]
    assert sent["in"] == "header" and not sent["required"]
    for path, method, status in [
        ("/v1/products/{product_id}", "get", "200"),
        ("/v1/products", "get", "200"),
        ("/v1/products", "post", "201"),
        ("/v1/products/{product_id}", "patch", "200"),
        ("/v1/products/{product_id}", "put", "200"),
        ("/v1/products/{product_id}", "delete", "200"),
    ]:
        answered = paths[path][method]["responses"][status]["headers"]["X-Catalog-Session"]
        assert answered["schema"]["example"].startswith("s1.")
