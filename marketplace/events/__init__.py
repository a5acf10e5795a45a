"""Events: the envelope, the outbox relay and the RabbitMQ bridge both ways (DESIGN.md section 7).

No Ray here: ``actors/relay.py`` and ``actors/inbound.py`` are the thin actors over this package.
"""

from marketplace.events.envelope import Envelope
from marketplace.events.topology import Topology

__all__ = ["Envelope", "Topology"]
