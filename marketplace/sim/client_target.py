"""The in-process target: the simulator's operations as ``MarketplaceClient`` calls.

No HTTP, no tokens: each operation is the client call the gateway would make for it, with the
principal the gateway would have derived from the token. It is the fastest way in, for
experiments on actor counts, durability and leases. ``HttpTarget`` (``http_target.py``) drives the
same operations through the gateway.

Ids the generator cannot know are resolved here: emails to user ids through the seed manifest,
the cart a ``Checkout`` takes is whatever the customer's earlier ``AddToCart`` put there, and a
``MoveShipment`` moves the oldest shipment due in the shared ``Deliveries``.

Product reads, searches and writes pass each user's own ``CatalogSession``, kept for the run, as
the gateway does for a client that sends back ``X-Catalog-Session``: they follow
``MARKETPLACE_CATALOG_CONSISTENCY`` as HTTP clients' do (replicas may answer in ``eventual`` and
``session``; a user reads its own writes in ``session``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from marketplace.consistency.history import Call, History, Kind
from marketplace.domain.catalog import ProductPatch
from marketplace.domain.errors import DomainError
from marketplace.domain.ids import new_id, sibling_id
from marketplace.domain.orders import OrderStatus
from marketplace.domain.session_token import CatalogSession
from marketplace.domain.users import Principal, Role
from marketplace.sim.deliveries import Deliveries
from marketplace.sim.loops import OK, Outcome
from marketplace.sim.manifest import SeedManifest
from marketplace.sim.operations import (
    AbandonCart,
    AddToCart,
    Browse,
    Checkout,
    MoveShipment,
    Operation,
    ReadDashboard,
    Restock,
    Search,
    UpdatePrice,
    UpdateProduct,
)
from marketplace.sim.recording import recording
from marketplace.sim.shopping import Carts, IdleCarrier, order_outcome, run_scope, scoped_key

if TYPE_CHECKING:
    from actors.client import MarketplaceClient


class ClientTarget:
    """Runs operations through ``client`` for the users of ``manifest``.

    Checkout keys are sent prefixed with ``key_scope`` (default: fresh for this target; see
    ``shopping.run_scope``). With ``history``, product reads and writes are recorded there
    (``recording.py``).
    """

    def __init__(
        self,
        client: MarketplaceClient,
        manifest: SeedManifest,
        deliveries: Deliveries | None = None,
        *,
        key_scope: str | None = None,
        history: History | None = None,
    ) -> None:
        self.client = client
        self.history = history
        self.key_scope = key_scope if key_scope is not None else run_scope()
        self.ids = {user.email: user.id for user in (*manifest.buyers, *manifest.sellers)}
        self.deliveries = deliveries if deliveries is not None else Deliveries()
        self.carts = Carts()
        # Carriers are not seeded users (admins create them); in-process, a carrier is just
        # the principal the gateway would derive from a carrier's token.
        self._carriers: dict[str, Principal] = {}
        self._sessions: dict[str, CatalogSession] = {}

    def _session(self, actor: str) -> CatalogSession:
        session = self._sessions.get(actor)
        if session is None:
            session = self._sessions[actor] = CatalogSession()
        return session

    def _user(self, email: str) -> str:
        try:
            return self.ids[email]
        except KeyError:
            raise LookupError(f"{email} is not in the seed manifest") from None

    def _carrier(self, carrier: str) -> Principal:
        principal = self._carriers.get(carrier)
        if principal is None:
            principal = self._carriers[carrier] = Principal(id=new_id("usr"), role=Role.CARRIER)
        return principal

    def _record(self, actor: str, kind: Kind, product_id: str) -> AbstractContextManager[Call]:
        return recording(
            self.history, actor, kind, product_id, lambda exc: isinstance(exc, DomainError)
        )

    async def run(self, op: Operation) -> Outcome:
        """Perform ``op``; a refusal by the domain is a failure with the error's code."""
        try:
            return await self._run(op)
        except DomainError as exc:
            return Outcome.failure(exc.code)

    async def _run(self, op: Operation) -> Outcome:
        client = self.client
        match op:
            case Browse(customer=customer, product_id=product_id):
                with self._record(customer, Kind.READ, product_id) as call:
                    session = self._session(customer)
                    product = await client.get_product(product_id, session=session)
                    call.version = product.version
            case Search(customer=customer, query=query, category=category):
                await client.search(query, category=category, session=self._session(customer))
            case AddToCart(customer=customer, product_id=product_id, quantity=quantity):
                wanted = self.carts.add(customer, product_id, quantity)
                await client.set_cart_item(self._user(customer), product_id, wanted)
            case Checkout(customer=customer, idempotency_key=key):
                self.carts.forget(customer)
                buyer = self._user(customer)
                order = await client.place_order(buyer, scoped_key(self.key_scope, key))
                if order.status is OrderStatus.CONFIRMED:
                    self.deliveries.confirmed(order.id)
                else:
                    # A refused checkout leaves the cart as it was; the next session starts empty.
                    await client.clear_cart(buyer)
                return order_outcome(
                    order.status, order.failure_reason, order.charged_unshown_price
                )
            case AbandonCart(customer=customer):
                self.carts.forget(customer)
                await client.clear_cart(self._user(customer))
            case ReadDashboard(seller=seller):
                await client.dashboard(self._user(seller))
            case UpdatePrice(seller=seller, product_id=product_id, price_cents=price):
                principal = Principal(id=self._user(seller), role=Role.SELLER)
                patch = ProductPatch(price_cents=price)
                with self._record(seller, Kind.WRITE, product_id) as call:
                    product = await client.update_product(
                        principal, product_id, patch, session=self._session(seller)
                    )
                    call.version = product.version
            case UpdateProduct(seller=seller, product_id=product_id, description=text):
                principal = Principal(id=self._user(seller), role=Role.SELLER)
                patch = ProductPatch(description=text)
                with self._record(seller, Kind.WRITE, product_id) as call:
                    product = await client.update_product(
                        principal, product_id, patch, session=self._session(seller)
                    )
                    call.version = product.version
            case Restock(seller=seller, product_id=product_id, delta=delta):
                principal = Principal(id=self._user(seller), role=Role.SELLER)
                await client.adjust_stock(principal, product_id, delta)
            case MoveShipment(carrier=carrier):
                move = self.deliveries.take()
                if move is None:
                    return IdleCarrier
                shipment_id = sibling_id(move.order_id, "shp")
                try:
                    await client.move_shipment(self._carrier(carrier), shipment_id, move.status)
                except DomainError:
                    raise  # refused for good (e.g. cancelled meanwhile): not queued again
                except Exception:
                    self.deliveries.give_back(move)
                    raise
                self.deliveries.done(move)
        return OK
