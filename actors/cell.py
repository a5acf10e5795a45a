"""A cell: one Ray actor that hosts the role of one partition index of every kind (colocated).

In the ``colocated`` topology (``Settings.topology``) the directory creates ``cell-<i>`` for
each partition index ``i`` instead of one actor per role: the cell builds, in its own process,
the role of index ``i`` of every kind that has more than ``i`` actors (``directory.cell_roles``),
each the same class with the same ``(settings, index, count)`` that Ray would construct it with
as an actor of its own, and registers them (``actors.endpoints.host``), so that the
directories of this process (an order coordinator's) call them directly, with no Ray call.
Other processes reach a role through the cell: ``invoke(name, method, args, kwargs)`` for one
call, ``run_batch_for(name, calls)`` for a batch (``actors.endpoints.CellEndpoint``).

The cell answers what callers ask of a process's raw handle (``Directory.get``): ``ready``
(once every role has loaded; its ``pid`` is the process's), ``inject_fault`` (faults are per
process, so it reaches every role here), ``batch_counts``, ``settle``, ``flush`` and
``run_batch`` (of those, on the cell). A killed cell restarts like any actor
(``max_restarts=-1``), and every role it hosts reloads from the store.

Like ``actors.classes``, this module imports the actor classes; only that module imports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import ray

from actors.base import ActorBase, process_identity, writer_for
from actors.batching import Call, public_method, run_calls
from actors.carts import CartShard
from actors.catalog import CatalogShard
from actors.directory import CELL, cell_roles
from actors.endpoints import host
from actors.faults import FAULTS, fault_from
from actors.inventory import InventoryPartition
from actors.metrics import actor_metrics, untraced_calls
from actors.orders import OrderCoordinator
from actors.payments import PaymentProcessor
from actors.sellers import SellerView
from actors.shipments import ShipmentCoordinator
from marketplace import trace_export
from marketplace.config import Settings

log = logging.getLogger(__name__)

# The class of each kind a cell hosts (the bridge actors stay actors of their own).
ROLE_CLASSES: dict[str, type[ActorBase]] = {
    "catalog": CatalogShard,
    "inventory": InventoryPartition,
    "carts": CartShard,
    "payments": PaymentProcessor,
    "shipments": ShipmentCoordinator,
    "sellers": SellerView,
    "orders": OrderCoordinator,
}


class Cell:
    """The roles of partition index ``index``, in one process (``count`` cells in all)."""

    def __init__(self, settings: dict[str, Any], index: int = 0, count: int = 1) -> None:
        """Build every role of this index (constructed inside the actor's event loop, as
        Ray constructs an async actor: each role starts loading its state at once)."""
        logging.basicConfig(level=logging.INFO)
        self.settings = Settings.model_validate(settings)
        self.index = index
        self.count = count
        trace_export.configure(self.settings, f"{CELL}-{index}")
        # One writer for every role: a checkout's rows (the order, its reservations, charge,
        # shipment and seller view) from the checkouts in flight commit in one transaction
        # rather than one per role, each with its own thread hop, lock and BEGIN/COMMIT.
        self.writer = writer_for(self.settings)
        self.writer.on_commit = actor_metrics(
            self.settings.namespace, CELL, self.settings.metrics
        ).committed
        self.roles: dict[str, ActorBase] = {}
        for kind, kind_count in cell_roles(self.settings, index):
            name = f"{kind.name}-{index}"
            role = ROLE_CLASSES[kind.name](settings, index, kind_count, writer=self.writer)
            self.roles[name] = role
            host(self.settings.namespace, name, role)

    def _role(self, name: str) -> ActorBase:
        role = self.roles.get(name)
        if role is None:
            raise LookupError(f"{CELL}-{self.index} does not host {name}")
        return role

    async def invoke(
        self, name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Call ``method`` of the role ``name`` (the Ray call's counterpart for one role):
        its result, or its error, which Ray carries back as it carries an actor's."""
        return await public_method(self._role(name), method)(*args, **kwargs)

    async def run_batch_for(self, name: str, calls: list[Call]) -> list[tuple[bool, Any]]:
        """Several calls to the role ``name`` in one Ray call (``actors.batching``)."""
        return await run_calls(self._role(name), calls)

    async def run_batch(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        """Several of the cell's own methods in one Ray call."""
        return await run_calls(self, calls)

    async def ready(self) -> dict[str, Any]:
        """Wait until every role has loaded; who and where this process is, the roles' names
        (``roles``) and how many writers they commit through (``writers``: one, the cell's). A
        role waiting for the database answers 503 here, as it would."""
        await asyncio.gather(*(role.ready() for role in self.roles.values()))
        writers = len({id(role.writer) for role in self.roles.values()})
        return process_identity(self, self.index, self.count) | {
            "roles": list(self.roles),
            "writers": writers,
        }

    async def inject_fault(self, fault_id: str, spec: dict[str, Any] | None) -> list[str]:
        """Start (or, with None, lift) an injected fault in this process: in every role."""
        FAULTS.inject(fault_id, fault_from(spec))
        return FAULTS.active()

    async def batch_counts(self) -> dict[str, tuple[int, int]]:
        """The batched calls the roles here have made to others, summed per target."""
        calls: Counter[str] = Counter()
        batches: Counter[str] = Counter()
        for role in self.roles.values():
            for target, (made, sent) in (await role.batch_counts()).items():
                calls[target] += made
                batches[target] += sent
        return {target: (calls[target], batches[target]) for target in calls}

    async def settle(self) -> None:
        """Every role's ``settle``."""
        await asyncio.gather(*(role.settle() for role in self.roles.values()))

    async def flush(self) -> None:
        """Every role's ``flush``: sent calls answered, queued writes committed."""
        await self.settle()
        await asyncio.gather(*(role.flush() for role in self.roles.values()))


untraced_calls(Cell)
CellActor = ray.remote(Cell)
