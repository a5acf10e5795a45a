"""The actor class of each kind, for the code that creates the actors (``Directory.create_all``),
and the colocated topology's cell, which hosts one of each.

Kept apart from the directory, which only names and routes: the actors themselves use the
directory, so the directory importing them would make a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.carts import CartShardActor
from actors.catalog import CatalogShardActor
from actors.catalog_replica import CatalogReplicaActor
from actors.cell import CellActor
from actors.inbound import InboundConsumerActor
from actors.inventory import InventoryPartitionActor
from actors.orders import OrderCoordinatorActor
from actors.payments import PaymentProcessorActor
from actors.relay import EventRelayActor
from actors.sellers import SellerViewActor
from actors.shipments import ShipmentCoordinatorActor

ACTOR_CLASSES: Mapping[str, Any] = {
    "catalog": CatalogShardActor,
    "replicas": CatalogReplicaActor,
    "inventory": InventoryPartitionActor,
    "carts": CartShardActor,
    "payments": PaymentProcessorActor,
    "shipments": ShipmentCoordinatorActor,
    "sellers": SellerViewActor,
    "orders": OrderCoordinatorActor,
    "relay": EventRelayActor,
    "inbound": InboundConsumerActor,
    # The colocated topology's process per partition index (``actors.cell``).
    "cell": CellActor,
}
