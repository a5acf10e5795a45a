"""The colocated topology without Ray: which cell hosts which role, the setting, local calls.

A cell (``actors.cell.Cell``) is a plain class, so it is built here in process with
``durability=none``: its roles are found by every directory of this process and called
directly, which is how one cell's roles call each other.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actors.calls import call
from actors.directory import (
    CARTS,
    CATALOG,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    SELLERS,
    SHIPMENTS,
    Directory,
    cell_count,
    cell_roles,
    host_of,
)
from actors.endpoints import (
    ActorEndpoint,
    LocalEndpoint,
    host,
    hosted,
    immutable,
    isolated,
    unhost,
)
from actors.faults import FAULTS, CallLost, LinkFault
from actors.protocols import InventoryPartitionApi
from actors.remote import Remote
from marketplace.config import Settings, Topology
from marketplace.domain.catalog import ProductDraft
from marketplace.domain.errors import NotFound
from marketplace.domain.ids import new_id
from marketplace.domain.orders import OrderStatus
from marketplace.domain.sellers import Dashboard
from marketplace.domain.users import Principal, Role

pytestmark = pytest.mark.unit


def _settings(**overrides: Any) -> Settings:
    return Settings(namespace="u" + uuid.uuid4().hex[:10], **overrides)


# -- the setting -------------------------------------------------------------------------------


def test_the_topology_is_distributed_by_default() -> None:
    assert Settings().topology is Topology.DISTRIBUTED


def test_the_topology_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPLACE_TOPOLOGY", "colocated")
    assert Settings().topology is Topology.COLOCATED
    assert Settings(topology="distributed").topology is Topology.DISTRIBUTED
    # It travels to the actors as the settings' payload, and back.
    payload = Settings().model_dump()
    assert Settings.model_validate(payload).topology is Topology.COLOCATED


def test_an_unknown_topology_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(topology="mesh")


# -- which cell hosts which role ---------------------------------------------------------------


def test_default_counts_make_one_cell_with_every_role() -> None:
    settings = _settings(topology="colocated")
    assert cell_count(settings) == 1
    roles = [(kind.name, count) for kind, count in cell_roles(settings, 0)]
    # Creation order: the coordinators, which resume sagas on start, last.
    assert roles == [
        ("catalog", 1),
        ("inventory", 1),
        ("carts", 1),
        ("payments", 1),
        ("shipments", 1),
        ("sellers", 1),
        ("orders", 1),
    ]
    directory = Directory(settings)
    assert directory.hosts() == ["cell-0"]
    assert {directory.host(name) for name in directory.all_names()} == {"cell-0"}


def test_a_cell_hosts_index_i_of_every_kind_with_more_than_i() -> None:
    settings = _settings(
        topology="colocated",
        catalog_shards=2,
        inventory_partitions=3,
        order_coordinators=2,
        payment_processors=1,
    )
    assert cell_count(settings) == 3
    hosted_by = {
        i: [(kind.name, count) for kind, count in cell_roles(settings, i)] for i in range(3)
    }
    assert hosted_by[0] == [
        ("catalog", 2),
        ("inventory", 3),
        ("carts", 1),
        ("payments", 1),
        ("shipments", 1),
        ("sellers", 1),
        ("orders", 2),
    ]
    assert hosted_by[1] == [("catalog", 2), ("inventory", 3), ("orders", 2)]
    assert hosted_by[2] == [("inventory", 3)]
    directory = Directory(settings)
    assert directory.hosts() == ["cell-0", "cell-1", "cell-2"]
    # Every role is hosted exactly once, by the cell of its index, and keeps its name.
    placed = [f"{kind.name}-{i}" for i in range(3) for kind, _ in cell_roles(settings, i)]
    assert sorted(placed) == sorted(directory.all_names())
    assert directory.host("inventory-2") == "cell-2"
    assert directory.host("orders-1") == "cell-1"
    assert directory.host("sellers-0") == "cell-0"
    # The bridge, and a cell's own name, are processes of their own.
    assert directory.host("relay-0") == "relay-0"
    assert directory.host("cell-1") == "cell-1"


def test_the_distributed_topology_runs_a_process_per_role() -> None:
    settings = _settings(catalog_shards=2)
    directory = Directory(settings)
    assert directory.hosts() == directory.all_names()
    assert all(host_of(settings, name) == name for name in directory.all_names())
    assert directory.names(CATALOG) == ["catalog-0", "catalog-1"]


def test_names_are_the_roles_in_both_topologies() -> None:
    for topology in ("distributed", "colocated"):
        directory = Directory(_settings(topology=topology, inventory_partitions=2))
        assert directory.names(INVENTORY) == ["inventory-0", "inventory-1"]
        assert directory.all_names()[-1] == "orders-0"
        assert directory.bridge_names() == []
    with_broker = Directory(_settings(topology="colocated", amqp_url="amqp://localhost"))
    assert with_broker.bridge_names() == ["relay-0", "inbound-0"]


# -- local calls -------------------------------------------------------------------------------


class FakeRole:
    """Stands in for a role: what a local call must keep apart and let through."""

    def __init__(self) -> None:
        self.kept: list[int] = []
        self.board = Dashboard(seller_id="usr_x")
        self.finished = asyncio.Event()

    async def keep(self, items: list[int]) -> list[int]:
        items.append(99)  # changes its own copy, as an actor changes what Ray unpickled
        self.kept = items
        return self.kept

    async def dashboard(self) -> Dashboard:
        return self.board  # mutable: the caller must get a copy

    async def same(self, value: Any) -> Any:
        return value

    async def missing(self, key: str) -> None:
        raise NotFound(f"no {key}", key=key)

    async def slow(self) -> str:
        await asyncio.sleep(0.05)
        self.finished.set()
        return "done"


async def test_a_local_call_gets_and_gives_copies_of_what_can_change() -> None:
    role = FakeRole()
    endpoint = LocalEndpoint(role, "x-0")
    mine = [1, 2]
    answer = await endpoint.invoke("keep", (mine,), {})
    assert mine == [1, 2]  # the callee changed its copy only
    assert answer == [1, 2, 99]
    answer.append(100)
    assert role.kept == [1, 2, 99]  # nor does the caller change the callee's state
    board = await endpoint.invoke("dashboard", (), {})
    board.orders_count = 7
    assert role.board.orders_count == 0


def test_frozen_values_are_shared_and_the_rest_copied() -> None:
    principal = Principal(id="usr_a", role=Role.BUYER)
    assert immutable(principal) and isolated(principal) is principal
    assert isolated(("a", 1, principal)) == ("a", 1, principal)
    assert not immutable(Dashboard(seller_id="usr_x"))
    assert not immutable(("a", [1]))
    value = {"a": [1]}
    copied = isolated(value)
    assert copied == value and copied is not value and copied["a"] is not value["a"]


async def test_a_local_domain_error_is_raised_as_itself() -> None:
    endpoint = LocalEndpoint(FakeRole(), "x-0")
    with pytest.raises(NotFound):
        await call(endpoint.invoke("missing", ("k",), {}))
    batch = await endpoint.run_batch([("missing", ("k",), {}), ("same", ([1],), {})])
    assert batch[0][0] is False and isinstance(batch[0][1], NotFound)
    assert batch[1] == (True, [1])


async def test_a_caller_that_stops_waiting_does_not_cancel_the_local_work() -> None:
    role = FakeRole()
    endpoint = LocalEndpoint(role, "x-0")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(endpoint.invoke("slow", (), {}), 0.001)
    await asyncio.wait_for(role.finished.wait(), 5)  # it went on, as a Ray call would


async def test_private_methods_are_not_called_locally() -> None:
    with pytest.raises(AttributeError):
        LocalEndpoint(FakeRole(), "x-0").invoke("_secret", (), {})


@pytest.fixture
def hosted_inventory() -> Iterator[tuple[Settings, FakeRole]]:
    settings = _settings(topology="colocated")
    role = FakeRole()
    host(settings.namespace, "inventory-0", role)
    yield settings, role
    unhost(settings.namespace, "inventory-0")


async def test_the_directory_calls_a_role_of_this_process_directly(
    hosted_inventory: tuple[Settings, FakeRole],
) -> None:
    settings, _ = hosted_inventory
    directory = Directory(settings)
    assert isinstance(directory.endpoint("inventory-0"), LocalEndpoint)
    remote: Remote[Any] = directory.at(INVENTORY, 0)
    assert await remote.endpoint.invoke("same", ("v",), {}) == "v"
    # A batched call goes the same way (no Ray is running here: any Ray call would fail).
    batcher = directory.batched(INVENTORY, 0)
    assert await batcher.call(FakeRole.same, "w") == "w"  # type: ignore[arg-type]
    # One call, no Ray call: the batch ran in this process.
    assert directory.batch_counts() == {"inventory-0": (1, 0)}


async def test_injected_faults_apply_to_local_calls(
    hosted_inventory: tuple[Settings, FakeRole],
) -> None:
    settings, _ = hosted_inventory
    directory = Directory(settings)
    FAULTS.inject("lose", LinkFault(target="inventory", drop_rate=1.0))
    try:
        with pytest.raises(CallLost):
            await directory.at(INVENTORY, 0).call(InventoryPartitionApi.get_stock, ["prd_x"])
        with pytest.raises(CallLost):
            await directory.batched(INVENTORY, 0).call(InventoryPartitionApi.get_stock, ["prd_x"])
    finally:
        FAULTS.inject("lose", None)


def test_roles_of_other_processes_are_reached_over_ray() -> None:
    directory = Directory(_settings())
    # No role is hosted here: a distributed directory looks the role's own actor up
    # (faked here, as Ray is not running).
    directory._handles["inventory-0"] = object()  # type: ignore[assignment]
    assert isinstance(directory.endpoint("inventory-0"), ActorEndpoint)
    colocated = Directory(_settings(topology="colocated"))
    colocated._handles["cell-0"] = object()  # type: ignore[assignment]
    endpoint = colocated.endpoint("inventory-0")
    assert type(endpoint).__name__ == "CellEndpoint"
    assert colocated.get("inventory-0") is colocated._handles["cell-0"]


# -- a whole cell, in process ------------------------------------------------------------------


async def test_a_cell_runs_a_checkout_between_its_own_roles(tmp_path: Path) -> None:
    from actors.cell import Cell
    from actors.client import MarketplaceClient
    from marketplace.store.engine import create_engine

    settings = _settings(
        topology="colocated",
        durability="none",
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        product_lease_s=0,
    )
    cell = Cell(settings.model_dump(), 0, 1)
    engine = create_engine(settings.resolved_database_url())
    try:
        info = await cell.ready()
        assert info["pid"] == os.getpid() and info["kind"] == "Cell"
        assert sorted(info["roles"]) == sorted(Directory(settings).all_names())
        client = MarketplaceClient(Directory(settings), engine)
        for name in client.directory.all_names():
            assert isinstance(client.directory.endpoint(name), LocalEndpoint), name
        seller = Principal(id=new_id("usr"), role=Role.SELLER)
        draft = ProductDraft(name="Widget", description="w", category="widgets", price_cents=700)
        product = await client.create_product(seller, draft, 3)
        buyer = new_id("usr")
        order = await client.place_order(
            buyer, "k1", items=[{"product_id": product.id, "quantity": 2}]
        )
        assert order.status is OrderStatus.CONFIRMED
        again = await client.place_order(
            buyer, "k1", items=[{"product_id": product.id, "quantity": 2}]
        )
        assert again.id == order.id  # the same key makes one order
        late = await client.place_order(
            new_id("usr"), "k2", items=[{"product_id": product.id, "quantity": 2}]
        )
        assert late.status is OrderStatus.CANCELLED and late.failure_reason == "out_of_stock"
        stock = await client.get_stock(product.id)
        assert (stock.sold, stock.reserved, stock.available) == (2, 0, 1)
        payment = await client.get_payment(order.id)
        assert payment is not None and payment.captured_cents == order.total_cents
        calls, ray_calls = (await cell.batch_counts()).get("inventory-0", (0, 0))
        assert calls >= 1 and ray_calls == 0  # every role in one process: no Ray call
        await cell.flush()
    finally:
        for name in cell.roles:
            unhost(settings.namespace, name)
        await engine.dispose()
    assert hosted(settings.namespace, "orders-0") is None
    assert {CARTS.name, PAYMENTS.name, SHIPMENTS.name, SELLERS.name, ORDERS.name} <= {
        name.rsplit("-", 1)[0] for name in cell.roles
    }


class FakeActorClass:
    """Records what ``Directory.create_all`` asks Ray for."""

    def __init__(self, kind: str, made: list[dict[str, Any]]) -> None:
        self.kind = kind
        self.made = made
        self.options_given: dict[str, Any] = {}

    def options(self, **options: Any) -> FakeActorClass:
        self.options_given = options
        return self

    def remote(self, payload: dict[str, Any], index: int, count: int) -> Any:
        self.made.append({"kind": self.kind, "index": index, "count": count, **self.options_given})
        answer = type("Handle", (), {})()
        answer.ready = type("Method", (), {"remote": staticmethod(lambda: None)})()
        return answer


@pytest.mark.parametrize("topology", ["distributed", "colocated"])
def test_create_all_makes_cells_or_an_actor_per_role(
    monkeypatch: pytest.MonkeyPatch, topology: str
) -> None:
    import ray

    monkeypatch.setattr(ray, "get", lambda refs: refs)
    settings = _settings(topology=topology, inventory_partitions=2, amqp_url="amqp://x")
    made: list[dict[str, Any]] = []
    kinds = ["catalog", "inventory", "carts", "payments", "shipments", "sellers", "orders"]
    classes = {kind: FakeActorClass(kind, made) for kind in [*kinds, "relay", "inbound", "cell"]}
    Directory(settings).create_all(classes)
    for actor in made:
        assert actor["namespace"] == settings.namespace
        assert actor["lifetime"] == "detached" and actor["get_if_exists"] is True
        assert actor["max_restarts"] == -1 and actor["max_task_retries"] == -1
        assert actor["num_cpus"] == settings.actor_num_cpus
    names = [actor["name"] for actor in made]
    if topology == "colocated":
        assert names == ["cell-0", "cell-1", "relay-0", "inbound-0"]
        assert [(a["index"], a["count"]) for a in made[:2]] == [(0, 2), (1, 2)]
        # A cell takes as many concurrent calls as its roles would have taken together.
        assert [a["max_concurrency"] for a in made[:2]] == [7000, 1000]
    else:
        assert names == [*Directory(settings).all_names(), "relay-0", "inbound-0"]
        assert all("max_concurrency" not in a for a in made)
