"""Registration checks and principals."""

from __future__ import annotations

import pytest

from marketplace.domain.errors import InvalidInput
from marketplace.domain.users import (
    Principal,
    Role,
    normalize_email,
    validate_password,
    validate_registration,
)

pytestmark = pytest.mark.unit


def test_valid_registration_normalizes_the_email() -> None:
    assert validate_registration("  Ada@Example.COM ", "correct horse", "Ada") == "ada@example.com"
    assert validate_registration("a@b.co", "x" * 8, "A") == "a@b.co"
    assert validate_registration("a@b.co", "x" * 256, "n" * 200) == "a@b.co"


@pytest.mark.parametrize(
    ("email", "password", "name", "field"),
    [
        ("ada@example.com", "short", "Ada", "password"),
        ("ada@example.com", "x" * 7, "Ada", "password"),
        ("ada@example.com", "x" * 257, "Ada", "password"),
        ("ada@example.com", " " * 8, "Ada", "password"),
        ("ada@example.com", "\t \n" * 4, "Ada", "password"),
        ("ada@example.com", "long enough", "", "name"),
        ("ada@example.com", "long enough", "   ", "name"),
        ("ada@example.com", "long enough", "n" * 201, "name"),
        ("", "long enough", "Ada", "email"),
        ("ada", "long enough", "Ada", "email"),
        ("ada@example", "long enough", "Ada", "email"),
        ("@example.com", "long enough", "Ada", "email"),
        ("ada@@example.com", "long enough", "Ada", "email"),
        ("a da@example.com", "long enough", "Ada", "email"),
        ("ada@exa mple.com", "long enough", "Ada", "email"),
        ("a" * 65 + "@example.com", "long enough", "Ada", "email"),
    ],
)
def test_invalid_registrations(email: str, password: str, name: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_registration(email, password, name)
    assert info.value.details["field"] == field
    assert info.value.status == 422


def test_normalize_email() -> None:
    assert normalize_email("\tBob@Example.org\n") == "bob@example.org"
    with pytest.raises(InvalidInput):
        normalize_email("bob@example.org\nx")


def test_principal_roles() -> None:
    assert Principal(id="usr_x", role=Role.ADMIN).is_admin
    for role in (Role.BUYER, Role.SELLER, Role.CARRIER):
        assert not Principal(id="usr_x", role=role).is_admin
    assert Principal(id="usr_x", role="seller").role is Role.SELLER
    assert {r.value for r in Role} == {"buyer", "seller", "admin", "carrier"}


@pytest.mark.parametrize("password", ["x" * 8, "correct horse", "x" * 256, " padded  "])
def test_new_passwords_follow_the_registration_rules(password: str) -> None:
    validate_password(password)
    assert validate_registration("a@b.co", password, "A") == "a@b.co"


@pytest.mark.parametrize("password", ["", "short", "x" * 7, "x" * 257, " " * 8, "\t \n" * 4])
def test_bad_new_passwords_name_their_field(password: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_password(password, field="new_password")
    assert info.value.details["field"] == "new_password"
    assert info.value.status == 422
