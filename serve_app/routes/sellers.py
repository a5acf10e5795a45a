"""The seller's dashboard."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.domain.users import Role
from serve_app.deps import Caller, Client, require
from serve_app.schemas import DashboardOut

router = APIRouter(tags=["sellers"])


@router.get("/v1/sellers/me/dashboard", response_model=DashboardOut)
async def dashboard(caller: Caller, client: Client) -> DashboardOut:
    """Orders, items, revenue and open orders of the calling seller."""
    require(caller, Role.SELLER)
    return DashboardOut.model_validate((await client.dashboard(caller.id)).public())
