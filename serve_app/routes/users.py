"""Registration, login (access tokens) and the caller's account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.security import OAuth2PasswordRequestForm

from marketplace.domain.errors import InvalidInput
from marketplace.domain.text import storable
from marketplace.domain.users import Role, User, normalize_email, validate_registration
from serve_app.deps import Caller, Client, ThisReplica, principal_from, rate_limit, require
from serve_app.problems import ProblemError
from serve_app.schemas import TokenOut, UserCreate, UserOut

router = APIRouter(tags=["users"])


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, role=user.role.value)


@router.post("/v1/users", status_code=201, response_model=UserOut)
async def register(
    body: UserCreate,
    replica: ThisReplica,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> UserOut:
    """Register a buyer or seller (carriers and admins: an admin's token is needed)."""
    role = Role(body.role)
    if role in (Role.CARRIER, Role.ADMIN):
        require(principal_from(authorization, replica.tokens), Role.ADMIN)
    validate_registration(body.email, body.password, body.name)
    password_hash = await replica.auth.hash_password(body.password)
    user = await replica.client.users.register(
        body.email, body.password, body.name, role, password_hash=password_hash
    )
    return _user_out(user)


@router.post("/v1/auth/token", response_model=TokenOut)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], replica: ThisReplica
) -> TokenOut:
    """Log in with the OAuth2 password form (username = email)."""
    try:
        email = normalize_email(form.username)
    except InvalidInput:
        email = form.username.strip().lower()[:320]
    rate_limit(replica.login_limit, email, "too many login attempts")
    known = "@" in email and storable(email)  # PostgreSQL cannot even look a NUL up
    user = await replica.client.users.by_email(email) if known else None
    stored = user.password_hash if user else None
    ok = await replica.auth.verify_password(stored, form.password)
    if user is None or not ok:
        raise ProblemError(
            401,
            "wrong email or password",
            code="bad_credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return TokenOut(access_token=replica.tokens.issue(user), expires_in=replica.settings.jwt_ttl_s)


@router.get("/v1/users/me", response_model=UserOut)
async def me(caller: Caller, client: Client) -> UserOut:
    """The caller's account."""
    user = await client.users.by_id(caller.id)
    if user is None:
        raise ProblemError(401, "the token's user no longer exists", code="invalid_token")
    return _user_out(user)
