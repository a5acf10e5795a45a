"""The seed manifest: what ``seed_market`` made (users, shared password, products with their
popularity weights), written as JSON (default ``.marketplace/seed.json``) for load tests and
notebooks to read back with ``load_manifest``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from marketplace.domain.users import Role
from marketplace.sim.market import Popularity

MANIFEST_VERSION = 1


class ManifestUser(BaseModel):
    """A seeded user as registered."""

    id: str
    email: str
    name: str
    role: Role


class ManifestProduct(BaseModel):
    """A seeded product as listed, with its popularity weight."""

    id: str
    seller_id: str
    name: str
    category: str
    price_cents: int
    stock: int
    weight: float


class SeedManifest(BaseModel, Popularity[ManifestProduct]):
    """What ``seed_market`` made: enough for load tests and notebooks to act as these users."""

    version: int = MANIFEST_VERSION
    seed: int
    zipf: float
    seeded_at: datetime
    namespace: str | None = None
    database_url: str | None = None  # password masked
    password: str
    sellers: list[ManifestUser]
    buyers: list[ManifestUser]
    products: list[ManifestProduct]  # by popularity rank, most popular first
    categories: list[str]

    @property
    def seller_emails(self) -> list[str]:
        """Every seeded seller's email."""
        return [user.email for user in self.sellers]

    @property
    def buyer_emails(self) -> list[str]:
        """Every seeded buyer's email."""
        return [user.email for user in self.buyers]


def default_manifest_path() -> Path:
    """``.marketplace/seed.json`` under the working directory."""
    return Path.cwd() / ".marketplace" / "seed.json"


def write_manifest(manifest: SeedManifest, path: str | Path | None = None) -> Path:
    """Write ``manifest`` as JSON (atomically); returns the path."""
    target = Path(path) if path is not None else default_manifest_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".tmp")
    scratch.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    scratch.replace(target)
    return target


def load_manifest(path: str | Path | None = None) -> SeedManifest:
    """Read a manifest written by ``seed_market`` (default ``.marketplace/seed.json``)."""
    source = Path(path) if path is not None else default_manifest_path()
    return SeedManifest.model_validate_json(source.read_text(encoding="utf-8"))


def summarize(manifest: SeedManifest, top: int = 5) -> dict[str, Any]:
    """Headline figures of a seeded market (for printing)."""
    return {
        "sellers": len(manifest.sellers),
        "buyers": len(manifest.buyers),
        "products": len(manifest.products),
        "categories": len(manifest.categories),
        "total_stock": sum(product.stock for product in manifest.products),
        "top_products": [
            (product.name, round(product.weight, 4)) for product in manifest.products[:top]
        ],
    }
