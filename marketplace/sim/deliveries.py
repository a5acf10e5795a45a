"""The shipments a simulation's carriers have to move, shared by every target.

Checkouts that confirm an order put it here; a carrier's ``MoveShipment`` takes the oldest
shipment due a step (ship, then deliver) and hands it back for its next step once the move is
made. The generator cannot know order ids ahead of time, so this is where its carrier intents
meet the orders the run actually made.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from marketplace.domain.shipments import ShipmentStatus

_NEXT = {ShipmentStatus.SHIPPED: ShipmentStatus.DELIVERED}


@dataclass(frozen=True, slots=True)
class Move:
    """Move order ``order_id``'s shipment to ``status``."""

    order_id: str
    status: ShipmentStatus


class Deliveries:
    """A FIFO of moves due: confirmed orders wait to ship, shipped ones to be delivered."""

    def __init__(self) -> None:
        self._due: deque[Move] = deque()
        self.delivered = 0
        self.acknowledged: list[str] = []  # every order a checkout was told is confirmed

    def __len__(self) -> int:
        return len(self._due)

    def confirmed(self, order_id: str) -> None:
        """``order_id`` was confirmed: its shipment can ship."""
        self.acknowledged.append(order_id)
        self._due.append(Move(order_id, ShipmentStatus.SHIPPED))

    def take(self) -> Move | None:
        """The oldest move due, or None when nothing waits (the carrier has nothing to do)."""
        return self._due.popleft() if self._due else None

    def done(self, move: Move) -> None:
        """``move`` was made: queue the shipment's next step, if it has one."""
        following = _NEXT.get(move.status)
        if following is None:
            self.delivered += 1
        else:
            self._due.append(Move(move.order_id, following))

    def give_back(self, move: Move) -> None:
        """``move`` failed in a way worth retrying (a timeout): it goes first next time."""
        self._due.appendleft(move)
