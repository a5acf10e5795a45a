"""Admin-only operations: the invariant audit, resetting a user's password."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from marketplace.domain.errors import InvalidInput, NotFound
from marketplace.domain.ids import is_id
from marketplace.domain.users import Role, validate_password
from serve_app.deps import Caller, Client, ThisReplica, require
from serve_app.schemas import PasswordReset

router = APIRouter(tags=["operations"])


@router.get("/v1/admin/audit")
async def audit(caller: Caller, client: Client) -> dict[str, Any]:
    """The invariant audit over the live system (admin)."""
    require(caller, Role.ADMIN)
    report = await client.audit()
    return report.model_dump()


@router.post("/v1/admin/users/{user_id}/password", status_code=204, response_class=Response)
async def reset_password(
    user_id: str, body: PasswordReset, caller: Caller, replica: ThisReplica
) -> Response:
    """Set a user's password (admin); every token the user holds is revoked."""
    require(caller, Role.ADMIN)
    if not is_id(user_id, "usr"):
        raise InvalidInput("user_id is not a valid user id", field="user_id")
    validate_password(body.new_password, field="new_password")
    if await replica.client.users.by_id(user_id) is None:  # before paying for a hash
        raise NotFound("no such user")
    password_hash = await replica.auth.hash_password(body.new_password)
    changed = await replica.client.users.set_password(user_id, password_hash)
    if changed is None:
        raise NotFound("no such user")
    replica.revocations.note(changed.id, changed.token_version)
    return Response(status_code=204)
