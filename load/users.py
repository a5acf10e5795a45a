"""Locust user classes: Browser, Buyer, Seller, Carrier and the flash-sale buyer.

Requests are named ``METHOD /path/{param}`` so that Locust's statistics (and the SLOs of a
scenario, which use the same names) group them per endpoint. A business answer such as an order
cancelled ``out_of_stock`` is a success; only unexpected status codes count as failures.
"""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any, ClassVar
from urllib.parse import urlencode

from gevent.event import Event
from locust import FastHttpUser, between, events, task
from locust.runners import MasterRunner, WorkerRunner

from load.environment import admin_credentials, flash_stock, weight
from load.flash_sale import list_flash_product
from load.market import MARKET
from load.payloads import ADDRESS, CARD, PASSWORD, new_email, product_draft

_carrier_lock = threading.Lock()
_carrier_email: list[str] = []  # one carrier account per Locust process, made by the admin
_flash_gate = Event()  # opens when every flash buyer of this process has signed up
_flash_ready = [0]
FLASH_GATE_TIMEOUT_S = 60.0


class MarketplaceUser(FastHttpUser):
    """Shared helpers: sign-up and log-in (tokens cached per account), authenticated requests
    named after their route, product pages.

    A subclass names its ``kind`` (one of ``load/environment.py``'s ``USER_KINDS``): its weight
    comes from ``LOAD_WEIGHT_<KIND>``, and a weight of 0 keeps the class out of the run.
    """

    abstract = True
    kind: ClassVar[str] = ""
    wait_time = between(0.5, 2.0)
    email: str
    password: str
    user_id: str = ""
    token: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            value = weight(cls.kind)
            cls.weight, cls.abstract = max(value, 1), value == 0  # abstract: Locust skips it

    def auth(self) -> dict[str, str]:
        """The bearer header of the account in use."""
        return {"Authorization": f"Bearer {self.token}"}

    def login(self, refresh: bool = False) -> bool:
        """Log in as ``self.email`` (reusing another user's token for the same account)."""
        if not refresh and self.email in MARKET.tokens:
            self.token = MARKET.tokens[self.email]
        else:
            with self.client.post(
                "/v1/auth/token",
                data=urlencode({"username": self.email, "password": self.password}),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                name="POST /v1/auth/token",
                catch_response=True,
            ) as reply:
                if reply.status_code != 200:
                    reply.failure(f"login {reply.status_code}: {reply.text[:200]}")
                    return False
                self.token = reply.json()["access_token"]
                MARKET.tokens[self.email] = self.token
        with self.client.get(
            "/v1/users/me", headers=self.auth(), name="GET /v1/users/me", catch_response=True
        ) as me:
            if me.status_code == 401 and not refresh:
                me.success()
                return self.login(refresh=True)
            if me.status_code != 200:
                me.failure(f"me {me.status_code}")
                return False
            self.user_id = me.json()["id"]
        return True

    def register(self, role: str, admin_token: str | None = None) -> None:
        """Make a fresh account of ``role`` and use it."""
        self.email, self.password = new_email(role), PASSWORD
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        body = {"email": self.email, "password": self.password, "name": role.title()}
        with self.client.post(
            "/v1/users",
            json={**body, "role": role},
            headers=headers,
            name="POST /v1/users",
            catch_response=True,
        ) as reply:
            if reply.status_code != 201:
                reply.failure(f"register {reply.status_code}: {reply.text[:200]}")

    def sign_in_as(self, role: str) -> None:
        """A seeded account of ``role`` when the manifest has one, else a fresh one."""
        seeded = MARKET.next_email(role)
        if seeded:
            self.email, self.password = seeded, MARKET.password
        else:
            self.register(role)
        self.login()

    def call(
        self,
        method: str,
        route: str,
        id_: str = "",
        expect: tuple[int, ...] = (200,),
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Any:
        """One authenticated request to ``route`` (``{id}`` replaced by ``id_``), named
        ``METHOD route``; its JSON when the status is expected, else None.

        ``idempotent`` sends a fresh Idempotency-Key, as a client that may retry would: the
        change is then made once.
        """
        headers = self.auth()
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        path = route.replace("{id}", id_)
        with self.client.request(
            method, path, headers=headers, name=f"{method} {route}", catch_response=True, **kwargs
        ) as reply:
            if reply.status_code == 401:
                reply.success()  # the token expired: log in again, try next time
                self.login(refresh=True)
                return None
            if reply.status_code not in expect:
                reply.failure(f"{reply.status_code}: {reply.text[:200]}")
                return None
            return reply.json() if reply.text else {}

    def view_product(self, product: str, with_stock: bool = False) -> None:
        """A product page (anonymous), and its stock when asked."""
        self.client.get(f"/v1/products/{product}", name="GET /v1/products/{id}")
        if with_stock:
            self.client.get(f"/v1/products/{product}/stock", name="GET /v1/products/{id}/stock")

    def checkout(self, items: list[dict[str, Any]]) -> dict[str, Any] | None:
        """``POST /v1/orders`` with a fresh Idempotency-Key; records the answer."""
        order = self.call(
            "POST",
            "/v1/orders",
            expect=(201,),
            idempotent=True,
            json={"items": items, "payment": {"card_token": CARD}, "shipping_address": ADDRESS},
        )
        if order:
            MARKET.log_order(order)
            if order["status"] == "confirmed":
                MARKET.shipments.append("shp_" + order["id"].removeprefix("ord_"))
        return order


class Browser(MarketplaceUser):
    """Anonymous shopper: searches, views products and their stock."""

    kind = "browser"
    wait_time = between(0.2, 1.0)

    @task(3)
    def search(self) -> None:
        """A search by category or by words."""
        params: dict[str, Any] = {"limit": 20}
        if random.random() < 0.5:
            params["category"] = random.choice(MARKET.categories)
        else:
            params["q"] = random.choice(("lamp", "coffee", "red", "classic", "book", "load"))
        self.client.get("/v1/products", params=params, name="GET /v1/products")

    @task(5)
    def view(self) -> None:
        """A popular product and its stock (a search while the catalog is empty)."""
        product = MARKET.catalog.pick()
        if product is None:
            return self.search()
        self.view_product(product, with_stock=True)


class Buyer(MarketplaceUser):
    """Logs in, fills the cart with popular products, checks out and follows the order."""

    kind = "buyer"
    orders: list[str]

    def on_start(self) -> None:
        self.orders = []
        self.sign_in_as("buyer")

    @task(3)
    def browse(self) -> None:
        """A popular product's page."""
        product = MARKET.catalog.pick()
        if product is not None:
            self.view_product(product)

    @task(2)
    def shop(self) -> None:
        """Cart then checkout of what was put in it."""
        picked = {p for p in (MARKET.catalog.pick() for _ in range(random.randint(1, 3))) if p}
        if not picked:
            return
        items = [{"product_id": p, "quantity": 1} for p in sorted(picked)]
        for item in items:
            quantity = {"quantity": item["quantity"]}
            self.call("PUT", "/v1/cart/items/{id}", str(item["product_id"]), json=quantity)
        self.call("GET", "/v1/cart")
        order = self.checkout(items)
        self.call("DELETE", "/v1/cart")
        if order:
            self.orders = [order["id"], *self.orders][:10]

    @task(2)
    def follow(self) -> None:
        """Look at one of my orders and its shipment."""
        if not self.orders:
            self.call("GET", "/v1/orders")
            return
        order_id = random.choice(self.orders)
        order = self.call("GET", "/v1/orders/{id}", order_id)
        if order and order["status"] not in ("cancelled", "pending"):
            self.call("GET", "/v1/orders/{id}/shipment", order_id)


class Seller(MarketplaceUser):
    """Lists products, reprices and restocks them, reads the dashboard."""

    kind = "seller"
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.sign_in_as("seller")

    def one_of_mine(self) -> str | None:
        """One of my products, None while I have none."""
        mine = MARKET.catalog.owned_by(self.user_id)
        return random.choice(mine) if mine else None

    @task(1)
    def create(self) -> None:
        """List a new product."""
        draft = product_draft(MARKET.categories)
        product = self.call("POST", "/v1/products", expect=(201,), idempotent=True, json=draft)
        if product:
            MARKET.catalog.add(product["id"], product["seller_id"])

    @task(2)
    def reprice(self) -> None:
        """A new price for one of mine (a new product while I have none)."""
        product = self.one_of_mine()
        if product is None:
            return self.create()
        price = {"price_cents": random.randint(200, 20_000)}
        self.call("PATCH", "/v1/products/{id}", product, json=price)

    @task(2)
    def restock(self) -> None:
        """More units of one of mine."""
        product = self.one_of_mine()
        if product is not None:
            delta = {"delta": random.randint(5, 50)}
            self.call("POST", "/v1/products/{id}/stock", product, idempotent=True, json=delta)

    @task(2)
    def dashboard(self) -> None:
        """My dashboard."""
        self.call("GET", "/v1/sellers/me/dashboard")


class Carrier(MarketplaceUser):
    """Marks the shipments of confirmed orders shipped, then delivered."""

    kind = "carrier"
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        with _carrier_lock:
            if not _carrier_email:
                self.email, self.password = admin_credentials()
                if not self.login():
                    return
                self.register("carrier", admin_token=self.token)
                _carrier_email.append(self.email)
            self.email, self.password = _carrier_email[0], PASSWORD
        self.login()

    def move(self, shipment_id: str, status: str) -> bool:
        """Move a shipment to ``status``; whether it is there now."""
        moved = self.call(
            "PATCH",
            "/v1/shipments/{id}",
            shipment_id,
            expect=(200, 409),  # 409: the buyer cancelled first, or another carrier moved it
            json={"status": status},
        )
        return bool(moved) and moved.get("status") == status

    @task
    def deliver(self) -> None:
        """Deliver a shipped shipment or ship a waiting one."""
        if MARKET.shipped and (random.random() < 0.5 or not MARKET.shipments):
            self.move(MARKET.shipped.popleft(), "delivered")
        elif MARKET.shipments:
            shipment_id = MARKET.shipments.popleft()
            if self.move(shipment_id, "shipped"):
                MARKET.shipped.append(shipment_id)


class FlashBuyer(MarketplaceUser):
    """A flash sale: every one of these signs up, waits at the gate until all of this process's
    flash buyers have, then all check out the one scarce product once, together."""

    kind = "flash_buyer"
    wait_time = between(30, 60)  # one checkout each, then idle until the sale ends

    def on_start(self) -> None:
        self.register("buyer")
        self.login()
        _flash_ready[0] += 1
        runner = self.environment.runner
        if runner is None or _flash_ready[0] >= runner.target_user_count:
            _flash_gate.set()

    @task
    def grab(self) -> None:
        """One checkout of the scarce product, once the gate opens."""
        # A bound, so a buyer that failed to sign up cannot hold the sale back forever.
        _flash_gate.wait(timeout=FLASH_GATE_TIMEOUT_S)
        if MARKET.flash_product:
            self.checkout([{"product_id": MARKET.flash_product, "quantity": 1}])


@events.test_start.add_listener
def _list_flash_product(environment: Any, **_: Any) -> None:
    """Without ``LOAD_FLASH_PRODUCT``, a flash sale in one Locust process lists its product.

    Several processes would each list their own, so there the product must be given
    (``marketplace load`` lists it before starting Locust).
    """
    if weight("flash_buyer") == 0 or MARKET.flash_product or not environment.host:
        return
    if isinstance(environment.runner, MasterRunner):
        return  # the master runs no users
    if isinstance(environment.runner, WorkerRunner):
        raise RuntimeError(
            "a distributed flash sale needs LOAD_FLASH_PRODUCT (or marketplace load)"
        )
    MARKET.flash_product = list_flash_product(environment.host, flash_stock())


__all__ = ["Browser", "Buyer", "Carrier", "FlashBuyer", "Seller"]
