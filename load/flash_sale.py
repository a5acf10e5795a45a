"""The flash sale's scarce product, listed over plain HTTP before the sale starts.

Without Locust, so that ``marketplace load`` can list it in its own process (Locust would
gevent-patch that process) and hand it to every Locust worker.
"""

from __future__ import annotations

from load.market import MARKET
from load.payloads import PASSWORD, new_email, product_draft


def list_flash_product(host: str, stock: int) -> str:
    """List the scarce product of a flash sale (as a fresh seller) and return its id."""
    import httpx

    email = new_email("seller")
    with httpx.Client(base_url=host, timeout=30) as http:
        body = {"email": email, "password": PASSWORD, "name": "Flash", "role": "seller"}
        http.post("/v1/users", json=body).raise_for_status()
        login = http.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        token = login.raise_for_status().json()["access_token"]
        product = http.post(
            "/v1/products",
            json=product_draft(MARKET.categories, stock=stock),
            headers={"Authorization": f"Bearer {token}"},
        )
        return str(product.raise_for_status().json()["id"])
