"""Admin-only operations: the invariant audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from marketplace.domain.users import Role
from serve_app.deps import Caller, Client, require

router = APIRouter(tags=["operations"])


@router.get("/v1/admin/audit")
async def audit(caller: Caller, client: Client) -> dict[str, Any]:
    """The invariant audit over the live system (admin)."""
    require(caller, Role.ADMIN)
    report = await client.audit()
    return report.model_dump()
