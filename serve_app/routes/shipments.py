"""An order's shipment, and carriers moving it along."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.domain.shipments import ShipmentStatus
from marketplace.domain.users import Role
from serve_app.deps import Caller, Client, require
from serve_app.schemas import ShipmentMove, ShipmentOut

router = APIRouter(tags=["shipments"])


@router.get("/v1/orders/{order_id}/shipment", response_model=ShipmentOut)
async def shipment(order_id: str, caller: Caller, client: Client) -> ShipmentOut:
    """The order's shipment and its packages."""
    return ShipmentOut.model_validate((await client.get_shipment(caller, order_id)).public())


@router.patch("/v1/shipments/{shipment_id}", response_model=ShipmentOut)
async def move_shipment(
    shipment_id: str, body: ShipmentMove, caller: Caller, client: Client
) -> ShipmentOut:
    """Mark shipped or delivered (carriers and admins)."""
    require(caller, Role.CARRIER)
    moved = await client.move_shipment(caller, shipment_id, ShipmentStatus(body.status))
    return ShipmentOut.model_validate(moved.public())
