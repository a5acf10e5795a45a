"""Property-based tests of the live app against its own OpenAPI document (schemathesis 4.x).

Every documented operation is called with generated valid and invalid input, signed in as a
caller who may use it, and must answer without a server error, with a documented status code,
a documented content type and a body that matches the documented schema. On the SQLite
marketplace and on the PostgreSQL one (``served_on_store``).
"""

import re
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

PASSWORD = "password123"
# Examples per operation and mode. On PostgreSQL fewer: the same gateway and actors answer
# there, every operation and mode still runs, and the values PostgreSQL alone refuses (U+0000,
# lone surrogates, over-long strings, numbers beyond its integers) are sent to it on purpose by
# test_bad_input.py. Its PostgreSQL calls took 7.8 s here instead of 18.6 s with 25.
MAX_EXAMPLES = {"sqlite": 25, "postgres": 10}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _token(http: httpx.Client, email: str, password: str) -> str:
    reply = http.post("/v1/auth/token", data={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def _user(http: httpx.Client, role: str, admin: str | None = None) -> str:
    email = f"st-{role}-{uuid.uuid4().hex[:10]}@example.com"
    headers = {"Authorization": f"Bearer {admin}"} if admin else {}
    reply = http.post(
        "/v1/users",
        json={"email": email, "password": PASSWORD, "name": role, "role": role},
        headers=headers,
    )
    assert reply.status_code == 201, reply.text
    return _token(http, email, PASSWORD)


@pytest.fixture(scope="module")
def tokens(served_on_store: dict[str, Any]) -> dict[str, str]:
    """A token per role: the caller each operation is exercised as."""
    with httpx.Client(base_url=served_on_store["url"], timeout=60) as http:
        admin = _token(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        return {
            "admin": admin,
            "buyer": _user(http, "buyer"),
            "seller": _user(http, "seller"),
            "carrier": _user(http, "carrier", admin),
        }


@pytest.fixture(scope="module")
def live_schema(served_on_store: dict[str, Any]) -> Any:
    """The document the running app serves."""
    return schemathesis.openapi.from_url(f"{served_on_store['url']}/openapi.json")


def _operations() -> list[str]:
    """The documented operations, known at collection (before the app is served) from the
    app's own document; ``test_the_live_document_is_the_same`` ties it to the served one."""
    from serve_app.gateway import build_api

    return [
        f"{method.upper()} {path}"
        for path, operations in build_api().openapi()["paths"].items()
        for method in operations
    ]


OPERATIONS = _operations()


def caller_for(method: str, path: str) -> str:
    """Who may call the operation: its owner role, or the admin for admin-only routes."""
    if path.startswith("/v1/admin") or path == "/v1/users":
        return "admin"
    if path.startswith("/v1/products") and method != "GET":
        return "seller"
    if path.startswith("/v1/shipments"):
        return "carrier"
    if path.startswith("/v1/sellers"):
        return "seller"
    return "buyer"


def test_the_live_document_is_the_same(live_schema: Any) -> None:
    live = {
        f"{method.upper()} {path}"
        for path, operations in live_schema.raw_schema["paths"].items()
        for method in operations
    }
    assert live == set(OPERATIONS)


@pytest.fixture(scope="module")
def known(served_on_store: dict[str, Any], tokens: dict[str, str]) -> dict[str, str]:
    """Real resources of the callers, so generated calls also reach past id validation."""
    with httpx.Client(base_url=served_on_store["url"], timeout=60) as http:
        seller = {"Authorization": f"Bearer {tokens['seller']}"}
        buyer = {"Authorization": f"Bearer {tokens['buyer']}"}

        def product() -> str:
            reply = http.post(
                "/v1/products",
                json={
                    "name": "Fuzzed kettle",
                    "category": "fuzz",
                    "price_cents": 250,
                    "initial_stock": 1_000_000,
                },
                headers=seller,
            )
            assert reply.status_code == 201, reply.text
            return str(reply.json()["id"])

        def order(product_id: str) -> str:
            reply = http.post(
                "/v1/orders",
                json={
                    "items": [{"product_id": product_id, "quantity": 1}],
                    "payment": {"card_token": "tok_visa"},
                    "shipping_address": {
                        "name": "F",
                        "street": "1 Fuzz St",
                        "city": "C",
                        "zip": "1",
                        "country": "US",
                    },
                },
                headers={**buyer, "Idempotency-Key": f"fuzz-{uuid.uuid4().hex}"},
            )
            assert reply.status_code == 201 and reply.json()["status"] == "confirmed", reply.text
            return str(reply.json()["id"])

        def user() -> str:
            """An account of its own: resetting its password revokes nobody else's token."""
            reply = http.post(
                "/v1/users",
                json={
                    "email": f"st-reset-{uuid.uuid4().hex[:10]}@example.com",
                    "password": PASSWORD,
                    "name": "Reset",
                },
            )
            assert reply.status_code == 201, reply.text
            return str(reply.json()["id"])

        main = product()
        shipped = order(main)
        return {
            "user": user(),
            "product": main,
            "doomed_product": product(),
            "order": order(main),
            "cancelled_order": order(main),
            "shipment": "shp_" + shipped.removeprefix("ord_"),
        }


# Which known resource fills each path parameter (an operation that destroys its resource
# gets one of its own).
KNOWN_PARAMETERS = {
    "product_id": "product",
    "order_id": "order",
    "shipment_id": "shipment",
    "user_id": "user",
}
KNOWN_OVERRIDES = {
    "DELETE /v1/products/{product_id}": {"product_id": "doomed_product"},
    "POST /v1/orders/{order_id}/cancel": {"order_id": "cancelled_order"},
}
KNOWN_IDS = "known-ids"


# The schemathesis pytest loaders (``schemathesis.pytest.from_fixture``) do not run on pytest 9
# (they set ``Node._nodeid``), so each operation is a plain parametrized test that drives
# schemathesis' Hypothesis strategy itself: valid input (positive), invalid input (negative),
# and valid input on the callers' real resources (known-ids).
CASES = [
    (label, mode)
    for label in OPERATIONS
    for mode in ("positive", "negative", KNOWN_IDS)
    if mode != KNOWN_IDS or "{" in label  # known ids only where the path takes one
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_api_conforms_to_its_schema(
    served_on_store: dict[str, Any],
    live_schema: Any,
    tokens: dict[str, str],
    known: dict[str, str],
    label: str,
    mode: str,
) -> None:
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, label
    method, path = label.split(" ", 1)
    headers = {"Authorization": f"Bearer {tokens[caller_for(method, path)]}"}
    names = re.findall(r"{([a-z_]+)}", path)
    if mode == KNOWN_IDS:
        which = {**KNOWN_PARAMETERS, **KNOWN_OVERRIDES.get(label, {})}
        strategy = operation.as_strategy(
            generation_mode=GenerationMode.POSITIVE,
            path_parameters={name: known[which[name]] for name in names},
        )
    else:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES[served_on_store["store"]],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case: schemathesis.Case) -> None:
        # The base URL named rather than derived from the document: the PostgreSQL app is
        # served under a prefix its paths do not carry.
        case.call_and_validate(
            base_url=served_on_store["url"], headers=headers, checks=CHECKS, timeout=60
        )

    try:
        check()
    except Unsatisfiable:
        if mode != "negative":
            raise
        # e.g. an operation whose only input is a free-form string id: nothing is invalid
        pytest.skip("the schema leaves no input to make invalid")
