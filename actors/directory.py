"""The directory: creates, names and routes to the marketplace's actors.

A key's owner is ``stable_hash(key) % count``. Roles are named ``<kind>-<index>`` in the
settings' namespace and created get-or-create, so any process (a gateway replica, a notebook, a
coordinator) that holds the same settings finds the same actors.

Where a role lives depends on the topology (``Settings.topology``). ``distributed``: each role
is a Ray actor of its own, named as the role. ``colocated``: one Ray actor per partition index
``i``, the cell ``cell-<i>`` (``actors.cell``), hosts the role of index ``i`` of every kind that
has more than ``i`` (the seller view, one, is in ``cell-0``); the bridge actors stay actors of
their own. Callers name roles either way; ``host`` says which process holds one, and a call to
a role this very process hosts is a direct call (``actors.endpoints``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar, cast

import ray
from ray.actor import ActorHandle

from actors import metrics
from actors.batching import Call, CallBatcher
from actors.endpoints import ActorEndpoint, CellEndpoint, Endpoint, LocalEndpoint, hosted
from actors.faults import FAULTS
from actors.protocols import (
    ActorApi,
    CartShardApi,
    CatalogShardApi,
    EventRelayApi,
    InboundConsumerApi,
    InventoryPartitionApi,
    OrderCoordinatorApi,
    PaymentProcessorApi,
    SellerViewApi,
    ShipmentCoordinatorApi,
)
from actors.remote import Remote
from marketplace.config import Settings, Topology
from marketplace.domain.ids import owner_index

A = TypeVar("A")


def _one(settings: Settings) -> int:
    return 1


@dataclass(frozen=True)
class ActorKind(Generic[A]):
    """One kind of actor, how many the settings ask for, and (as ``A``) the protocol its
    actors answer (``actors.protocols``)."""

    name: str
    count: Callable[[Settings], int] = _one


CATALOG: ActorKind[CatalogShardApi] = ActorKind("catalog", lambda s: s.catalog_shards)
INVENTORY: ActorKind[InventoryPartitionApi] = ActorKind(
    "inventory", lambda s: s.inventory_partitions
)
CARTS: ActorKind[CartShardApi] = ActorKind("carts", lambda s: s.cart_shards)
PAYMENTS: ActorKind[PaymentProcessorApi] = ActorKind("payments", lambda s: s.payment_processors)
SHIPMENTS: ActorKind[ShipmentCoordinatorApi] = ActorKind(
    "shipments", lambda s: s.shipment_coordinators
)
SELLERS: ActorKind[SellerViewApi] = ActorKind("sellers")
ORDERS: ActorKind[OrderCoordinatorApi] = ActorKind("orders", lambda s: s.order_coordinators)
# Submission order: coordinators last, because on start they resume sagas that call the rest.
ALL_KINDS: tuple[ActorKind[Any], ...] = (
    CATALOG,
    INVENTORY,
    CARTS,
    PAYMENTS,
    SHIPMENTS,
    SELLERS,
    ORDERS,
)
# The RabbitMQ bridge: submitted after everything else, and only when a broker is configured.
RELAY: ActorKind[EventRelayApi] = ActorKind("relay")
INBOUND: ActorKind[InboundConsumerApi] = ActorKind("inbound")
BRIDGE_KINDS: tuple[ActorKind[Any], ...] = (RELAY, INBOUND)
# The colocated topology's processes: ``cell-<i>`` hosts the roles of index i.
CELL = "cell"
# A cell takes this many concurrent Ray calls per role it hosts (Ray's default for one async
# actor), so a cell accepts what its roles as actors of their own would have.
CELL_CONCURRENCY_PER_ROLE = 1000


def cell_count(settings: Settings) -> int:
    """How many cells the colocated topology runs: the largest count of any kind."""
    return max(kind.count(settings) for kind in ALL_KINDS)


def cell_roles(settings: Settings, index: int) -> list[tuple[ActorKind[Any], int]]:
    """The roles cell ``index`` hosts: (kind, count of that kind) for every kind with more
    than ``index`` actors, in creation order (coordinators last); the role's index is ``index``."""
    return [(kind, kind.count(settings)) for kind in ALL_KINDS if kind.count(settings) > index]


def host_of(settings: Settings, name: str) -> str:
    """The name of the Ray actor that holds the role ``name`` (or a process name itself)."""
    if settings.topology is not Topology.COLOCATED:
        return name
    kind, _, index = name.rpartition("-")
    if kind in _HOSTED_KINDS and index.isdigit():
        return f"{CELL}-{index}"
    return name


_HOSTED_KINDS = frozenset(kind.name for kind in ALL_KINDS)


@dataclass
class Directory:
    """Handles to every actor, resolved by name and cached."""

    settings: Settings
    # By process (Ray actor) name; endpoints and batchers by role name.
    _handles: dict[str, ActorHandle[Any]] = field(default_factory=dict, repr=False)
    _endpoints: dict[str, Endpoint] = field(default_factory=dict, repr=False)
    _batchers: dict[str, CallBatcher[Any]] = field(default_factory=dict, repr=False)

    @property
    def colocated(self) -> bool:
        """Whether the roles live in cells (``Topology.COLOCATED``)."""
        return self.settings.topology is Topology.COLOCATED

    def count(self, kind: ActorKind[Any]) -> int:
        """How many actors of ``kind`` the settings ask for."""
        return kind.count(self.settings)

    def names(self, kind: ActorKind[Any]) -> list[str]:
        """The names of every actor of ``kind``."""
        return [f"{kind.name}-{i}" for i in range(self.count(kind))]

    def all_names(self) -> list[str]:
        """Every actor name, in creation order."""
        return [name for kind in ALL_KINDS for name in self.names(kind)]

    def host(self, name: str) -> str:
        """The name of the Ray actor that holds the role ``name``: the role's own name, or in
        the colocated topology its cell's."""
        return host_of(self.settings, name)

    def hosts(self) -> list[str]:
        """Every Ray actor (process) that holds the roles of ``all_names``, in creation order:
        the roles themselves, or the cells."""
        if self.colocated:
            return [f"{CELL}-{i}" for i in range(cell_count(self.settings))]
        return self.all_names()

    def bridge_names(self) -> list[str]:
        """The bridge actors' names (each its own process), when a broker is configured."""
        return [name for kind in self.bridge_kinds() for name in self.names(kind)]

    def bridge_kinds(self) -> tuple[ActorKind[Any], ...]:
        """The RabbitMQ bridge's actors: none unless a broker is configured."""
        return BRIDGE_KINDS if self.settings.amqp_url else ()

    def create_all(self, classes: Mapping[str, Any]) -> None:
        """Get-or-create every actor (blocking; call from a thread inside an event loop), each
        of the class ``classes`` names for its kind (``actors.classes.ACTOR_CLASSES``; the
        colocated topology's cells are its ``"cell"``).

        Every actor is submitted before any is waited for, so their processes start side by
        side (each spends seconds importing Ray): the coordinators, which resume sagas on
        start, and the bridge, which calls them all, are submitted last, and a call to an
        actor whose process is still starting waits in Ray's queue (named actors are
        registered when submitted, so looking one up by name already works). No actor's load
        calls another, so nothing here waits in a circle.
        """
        payload = self.settings.model_dump()
        handles = []
        if self.colocated:
            cells = cell_count(self.settings)
            for index in range(cells):
                concurrency = CELL_CONCURRENCY_PER_ROLE * len(cell_roles(self.settings, index))
                handles.append(
                    self._create(
                        classes[CELL], f"{CELL}-{index}", payload, index, cells, concurrency
                    )
                )
        kinds = self.bridge_kinds() if self.colocated else (*ALL_KINDS, *self.bridge_kinds())
        for kind in kinds:
            count = self.count(kind)
            for index, name in enumerate(self.names(kind)):
                handles.append(self._create(classes[kind.name], name, payload, index, count))
        ray.get([handle.ready.remote() for handle in handles])

    def _create(
        self,
        cls: Any,
        name: str,
        payload: dict[str, Any],
        index: int,
        count: int,
        max_concurrency: int | None = None,
    ) -> ActorHandle[Any]:
        extra = {} if max_concurrency is None else {"max_concurrency": max_concurrency}
        handle: ActorHandle[Any] = cls.options(
            name=name,
            namespace=self.settings.namespace,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=-1,
            num_cpus=self.settings.actor_num_cpus,
            **extra,
        ).remote(payload, index, count)
        self._handles[name] = handle
        return handle

    def kill_all(self) -> None:
        """Kill every actor for good (they are detached, so nothing else will): the bridge,
        then the roles' processes."""
        bridge = [name for kind in BRIDGE_KINDS for name in self.names(kind)]
        for name in [*bridge, *self.hosts()]:
            try:
                handle = ray.get_actor(name, namespace=self.settings.namespace)
            except ValueError:
                continue
            ray.kill(handle, no_restart=True)
        self._handles.clear()
        self._endpoints.clear()

    def get(self, name: str) -> ActorHandle[Any]:
        """The Ray handle of the process that holds the role (or process) ``name``, for Ray
        itself: to kill it, to wait on it, to ask its ``ready()``. In the colocated topology
        that is the role's cell: killing it kills every role it hosts."""
        process = self.host(name)
        handle = self._handles.get(process)
        if handle is None:
            handle = ray.get_actor(process, namespace=self.settings.namespace)
            self._handles[process] = handle
        return handle

    def endpoint(self, name: str) -> Endpoint:
        """Where calls to the role ``name`` go: this process when it hosts the role, else
        the role's own actor or its cell (looked up by name the first time)."""
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            role = hosted(self.settings.namespace, name)
            if role is not None:
                endpoint = LocalEndpoint(role, name)
            elif self.host(name) != name:
                endpoint = CellEndpoint(self.get(name), name)
            else:
                endpoint = ActorEndpoint(self.get(name))
            self._endpoints[name] = endpoint
        return endpoint

    def resolve_all(self) -> None:
        """Look every handle up now (blocking), so routing never blocks an event loop later."""
        for name in self.all_names():
            self.endpoint(name)

    async def aresolve_all(self) -> None:
        """``resolve_all`` off the event loop."""
        await asyncio.to_thread(self.resolve_all)

    def route(self, kind: ActorKind[A], key: str) -> Remote[A]:
        """The actor of ``kind`` that owns ``key``."""
        return self.at(kind, owner_index(key, self.count(kind)))

    def every(self, kind: ActorKind[A]) -> list[Remote[A]]:
        """Every actor of ``kind``."""
        return [Remote(self.endpoint(name), kind.name) for name in self.names(kind)]

    def all_actors(self) -> list[Remote[ActorApi]]:
        """Every actor but the bridge, in creation order, as what they all answer."""
        return [Remote(self.endpoint(name)) for name in self.all_names()]

    def group(self, kind: ActorKind[Any], keys: list[str]) -> dict[int, list[str]]:
        """``keys`` grouped by the index of their owner."""
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(owner_index(key, self.count(kind)), []).append(key)
        return groups

    def at(self, kind: ActorKind[A], index: int) -> Remote[A]:
        """The actor of ``kind`` with this index."""
        return Remote(self.endpoint(f"{kind.name}-{index}"), kind.name)

    def batched(self, kind: ActorKind[A], index: int) -> CallBatcher[A]:
        """Calls to the actor of ``kind`` with this index, sent in batches (``actors.batching``)."""
        name = f"{kind.name}-{index}"
        batcher = self._batchers.get(name)
        if batcher is None:
            batcher = self._batchers[name] = CallBatcher(
                partial(self._send_batch, kind.name, name),
                max_batch=self.settings.batch_max_calls,
                on_batch=partial(self._batch_sent, kind.name, name)
                if self.settings.metrics
                else None,
                kind=kind.name,
            )
        # One batcher per actor name, and a name belongs to one kind.
        return cast("CallBatcher[A]", batcher)

    def _batch_sent(self, kind: str, name: str, calls: int) -> None:
        # As ``endpoint`` decides, without its lookup (this must not fail: the batch waits).
        over_ray = hosted(self.settings.namespace, name) is None
        metrics.batch_sent(self.settings.namespace, kind, over_ray, calls)

    async def _send_batch(self, kind: str, name: str, calls: list[Call]) -> list[tuple[bool, Any]]:
        endpoint = self.endpoint(name)
        if FAULTS.touches(kind):  # a fault plan delays or loses this process's calls to kind
            return await FAULTS.through(kind, lambda: endpoint.run_batch(calls))
        return await endpoint.run_batch(calls)

    def batch_counts(self) -> dict[str, tuple[int, int]]:
        """Per target actor: calls made through ``batched`` so far, and the Ray calls they took
        (none for a role in this process: its batches run in-process, colocated)."""
        return {
            name: (
                b.calls,
                0 if isinstance(self._endpoints.get(name), LocalEndpoint) else b.batches,
            )
            for name, b in self._batchers.items()
        }

    async def settle(self) -> None:
        """Wait until every batched call made so far through this directory is answered."""
        await asyncio.gather(*(b.settle() for b in list(self._batchers.values())))

    def batched_route(self, kind: ActorKind[A], key: str) -> CallBatcher[A]:
        """``batched`` for the actor of ``kind`` that owns ``key``."""
        return self.batched(kind, owner_index(key, self.count(kind)))
