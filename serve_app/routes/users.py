"""Registration, login (access tokens), the caller's account and password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.security import OAuth2PasswordRequestForm

from marketplace.domain.errors import Conflict, InvalidInput
from marketplace.domain.text import storable
from marketplace.domain.users import (
    Role,
    User,
    normalize_email,
    validate_password,
    validate_registration,
)
from serve_app.deps import (
    Caller,
    Client,
    ThisReplica,
    authenticate,
    client_address,
    refuse_while,
    require,
)
from serve_app.problems import ProblemError
from serve_app.replica import Replica
from serve_app.schemas import PasswordChange, TokenOut, UserCreate, UserOut

router = APIRouter(tags=["users"])


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, role=user.role.value)


@router.post("/v1/users", status_code=201, response_model=UserOut)
async def register(
    body: UserCreate,
    replica: ThisReplica,
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> UserOut:
    """Register a buyer or seller (carriers and admins: an admin's token is needed). Sign-ups
    are limited per client address and overall (429 with Retry-After); an admin's are not."""
    role = Role(body.role)
    if role in (Role.CARRIER, Role.ADMIN):
        require(await authenticate(authorization, replica), Role.ADMIN)
    validate_registration(body.email, body.password, body.name)
    if role in (Role.BUYER, Role.SELLER):  # anyone's sign-up; an admin's accounts are not
        wait = await replica.sign_in.register(client_address(request))
        refuse_while(wait, "too many registrations")
    password_hash = await replica.auth.hash_password(body.password)
    user = await replica.client.users.register(
        body.email, body.password, body.name, role, password_hash=password_hash
    )
    return _user_out(user)


@router.post("/v1/auth/token", response_model=TokenOut)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], replica: ThisReplica, request: Request
) -> TokenOut:
    """Log in with the OAuth2 password form (username = email). Attempts are limited per
    account and client address, and per address (429 with Retry-After), for all replicas
    together: a flood against an account from one address does not lock its owner out."""
    try:
        email = normalize_email(form.username)
    except InvalidInput:
        email = form.username.strip().lower()[:320]
    refuse_while(
        await replica.sign_in.login(email, client_address(request)), "too many login attempts"
    )
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
    return _token_out(replica, user)


def _token_out(replica: Replica, user: User) -> TokenOut:
    return TokenOut(access_token=replica.tokens.issue(user), expires_in=replica.settings.jwt_ttl_s)


def _user_gone() -> ProblemError:
    return ProblemError(401, "the token's user no longer exists", code="invalid_token")


@router.get("/v1/users/me", response_model=UserOut)
async def me(caller: Caller, client: Client) -> UserOut:
    """The caller's account."""
    user = await client.users.by_id(caller.id)
    if user is None:
        raise _user_gone()
    return _user_out(user)


@router.post("/v1/users/me/password", response_model=TokenOut)
async def change_password(
    body: PasswordChange, caller: Caller, replica: ThisReplica, request: Request
) -> TokenOut:
    """Change the caller's password, given the current one (403 ``wrong_password`` if it is
    not). Every token issued before is revoked, this one included; the answer is a fresh one.

    Each attempt counts against the login limits of the account and address, so the old
    password cannot be guessed here faster than at ``/v1/auth/token``.
    """
    validate_password(body.new_password, field="new_password")
    user = await replica.client.users.by_id(caller.id)
    if user is None:
        raise _user_gone()
    refuse_while(
        await replica.sign_in.login(user.email, client_address(request)),
        "too many login attempts",
    )
    if not await replica.auth.verify_password(user.password_hash, body.old_password):
        raise ProblemError(403, "the old password is wrong", code="wrong_password")
    password_hash = await replica.auth.hash_password(body.new_password)
    changed = await replica.client.users.set_password(
        user.id, password_hash, expected_hash=user.password_hash
    )
    if changed is None:
        raise Conflict("the password was changed meanwhile; nothing was changed")
    replica.revocations.note(changed.id, changed.token_version)
    return _token_out(replica, changed)
