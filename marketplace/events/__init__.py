"""Events: the envelope, the outbox relay and the RabbitMQ bridge both ways (DESIGN.md section 7).

Part of the core, so no Ray here: ``actors/relay.py`` and ``actors/inbound.py`` are the thin
actors over this package. The drivers that use it sit above it: ``marketplace events tail`` is
``marketplace/cli/events.py`` and the relay benchmark ``marketplace/bench/relay.py``.
"""

from marketplace.events.envelope import Envelope
from marketplace.events.topology import Topology

__all__ = ["Envelope", "Topology"]
