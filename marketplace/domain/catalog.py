"""Products, their validation, and the per-shard search index."""

from __future__ import annotations

import base64
import hashlib
import heapq
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sortedcontainers import SortedList

from marketplace.domain.errors import InvalidInput
from marketplace.domain.events import DomainEvent, EventType

MAX_PRICE_CENTS = 100_000_000_00
MAX_SEARCH_LIMIT = 100
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_M = TypeVar("_M", bound=BaseModel)


class ProductDraft(BaseModel):
    """What a seller supplies to create (or replace) a product."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    category: str = Field(min_length=1, max_length=100)
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS)


def listing_fingerprint(draft: ProductDraft, initial_stock: int) -> str:
    """A digest of a listing request: one Idempotency-Key must come with one body."""
    body = {"draft": draft.model_dump(), "initial_stock": initial_stock}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


WRITE_OPERATIONS = ("update", "replace", "deactivate")


def write_fingerprint(product_id: str, operation: str, fields: dict[str, Any]) -> str:
    """A digest of a product write request (PATCH ``update``, PUT ``replace``, DELETE
    ``deactivate`` and the fields it sets): one Idempotency-Key must come with one write, to
    one product. ``If-Match`` is not part of it: a retry whose condition no longer holds is
    still the same write."""
    if operation not in WRITE_OPERATIONS:
        raise ValueError(f"unknown product write {operation!r}")
    body = {"product_id": product_id, "operation": operation, "fields": fields}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ProductPatch(BaseModel):
    """A partial update; absent fields keep their value."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    category: str | None = Field(default=None, min_length=1, max_length=100)
    price_cents: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)


class Product(BaseModel):
    """A catalog entry; every change bumps ``version``."""

    model_config = ConfigDict(frozen=True)

    id: str
    seller_id: str
    name: str
    description: str
    category: str
    price_cents: int
    version: int
    active: bool

    def patched(self, patch: ProductPatch) -> Product:
        """The product after a partial update."""
        changes = patch.model_dump(exclude_none=True)
        return self.model_copy(update={**changes, "version": self.version + 1})

    def replaced(self, draft: ProductDraft) -> Product:
        """The product after a full replacement."""
        return self.model_copy(update={**draft.model_dump(), "version": self.version + 1})

    def deactivated(self) -> Product:
        """The product withdrawn from sale."""
        return self.model_copy(update={"active": False, "version": self.version + 1})


def product_event(product: Product, event_type: EventType) -> DomainEvent:
    """The event announcing ``product`` in its new state (created, updated or deactivated)."""
    return DomainEvent(
        type=event_type, subject=product.id, sequence=product.version, data=product.model_dump()
    )


def parse_draft(data: dict[str, Any]) -> ProductDraft:
    """Validate a product body, turning pydantic's error into a domain error."""
    return _parse(ProductDraft, data)


def parse_patch(data: dict[str, Any]) -> ProductPatch:
    """Validate a partial product body."""
    return _parse(ProductPatch, data)


def _parse(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from None


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words."""
    return _TOKEN_RE.findall(text.lower())


SortKey = tuple[float, str]  # (-score, product_id): ascending order is best first


class SearchHit(BaseModel):
    """One product matched by a search, with the key that orders results across shards."""

    model_config = ConfigDict(frozen=True)

    product: Product
    score: float

    @property
    def sort_key(self) -> SortKey:
        """Best score first, then product id, a total order shared by every shard."""
        return (-self.score, self.product.id)


class SearchIndex:
    """An inverted index over name (weighted), description and category of one shard's products.

    Scoring is term-frequency-like: each query term found adds its field weights. The score uses
    no per-shard statistics (an IDF over this shard's products would differ from shard to shard),
    so a product scores the same wherever it lives and merging the shards' pages gives exactly the
    ranking of one big index. An empty query matches every active product with score 0, so
    filtering by category or seller also pages stably: all score 0, in product id order, so a
    page of it is read from sorted ids (all, per category, per seller) from the cursor on,
    without scoring every product of the shard.
    """

    NAME_WEIGHT = 3.0
    CATEGORY_WEIGHT = 2.0
    DESCRIPTION_WEIGHT = 1.0

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, float]] = defaultdict(dict)
        self._products: dict[str, Product] = {}
        self._ids: SortedList[str] = SortedList()
        self._by_category: dict[str, SortedList[str]] = defaultdict(SortedList)
        self._by_seller: dict[str, SortedList[str]] = defaultdict(SortedList)

    def __len__(self) -> int:
        return len(self._products)

    def upsert(self, product: Product) -> None:
        """Index (or re-index) a product."""
        self.remove(product.id)
        self._products[product.id] = product
        self._ids.add(product.id)
        self._by_category[product.category.lower()].add(product.id)
        self._by_seller[product.seller_id].add(product.id)
        weights: dict[str, float] = defaultdict(float)
        for token in tokenize(product.name):
            weights[token] += self.NAME_WEIGHT
        for token in tokenize(product.category):
            weights[token] += self.CATEGORY_WEIGHT
        for token in tokenize(product.description):
            weights[token] += self.DESCRIPTION_WEIGHT
        for token, weight in weights.items():
            self._postings[token][product.id] = weight

    def remove(self, product_id: str) -> None:
        """Forget a product."""
        old = self._products.pop(product_id, None)
        if old is None:
            return
        self._ids.discard(product_id)
        for sorted_ids, key in (
            (self._by_category, old.category.lower()),
            (self._by_seller, old.seller_id),
        ):
            sorted_ids[key].discard(product_id)
            if not sorted_ids[key]:
                del sorted_ids[key]
        for token in set(tokenize(f"{old.name} {old.category} {old.description}")):
            postings = self._postings.get(token)
            if postings is not None:
                postings.pop(product_id, None)
                if not postings:
                    del self._postings[token]

    def search(
        self,
        query: str,
        *,
        category: str | None = None,
        seller_id: str | None = None,
        limit: int = 20,
        after: SortKey | None = None,
        include_inactive: bool = False,
    ) -> list[SearchHit]:
        """The best ``limit`` hits whose sort key comes after ``after``."""
        terms = set(tokenize(query))
        wanted_category = category.lower() if category else None
        if not terms:
            return self._browse(wanted_category, seller_id, limit, after, include_inactive)
        scores: dict[str, float] = defaultdict(float)
        for term in terms:
            for product_id, weight in self._postings.get(term, {}).items():
                scores[product_id] += weight
        hits = (
            SearchHit(product=product, score=round(score, 9))
            for product_id, score in scores.items()
            if (product := self._products[product_id])
            and (include_inactive or product.active)
            and (wanted_category is None or product.category.lower() == wanted_category)
            and (seller_id is None or product.seller_id == seller_id)
        )
        if after is not None:
            hits = (hit for hit in hits if hit.sort_key > after)
        return heapq.nsmallest(limit, hits, key=lambda hit: hit.sort_key)

    def _browse(
        self,
        category: str | None,
        seller_id: str | None,
        limit: int,
        after: SortKey | None,
        include_inactive: bool,
    ) -> list[SearchHit]:
        """The empty query's page: every hit scores 0, so its order is the product ids'."""
        ids: SortedList[str] | None
        if category is not None:
            ids = self._by_category.get(category)
        elif seller_id is not None:
            ids = self._by_seller.get(seller_id)
        else:
            ids = self._ids
        if not ids:
            return []
        hits = (
            SearchHit(product=product, score=0.0)
            for product_id in _ids_after(ids, after)
            if (product := self._products[product_id])
            and (include_inactive or product.active)
            and (category is None or product.category.lower() == category)
            and (seller_id is None or product.seller_id == seller_id)
        )
        return list(islice(hits, limit))


def _ids_after(ids: SortedList[str], after: SortKey | None) -> Iterator[str]:
    """The ids whose score-0 sort key, ``(-0.0, id)``, comes after ``after``."""
    if after is None or after[0] < 0:  # a cursor from a scored page: every score-0 hit follows
        return iter(ids)
    if after[0] > 0:
        return iter(())
    return ids.islice(ids.bisect_right(after[1]))


def merge_hits(shard_hits: Iterable[list[SearchHit]], limit: int) -> list[SearchHit]:
    """Top-k merge of per-shard results (each already sorted best first)."""
    merged = heapq.merge(*shard_hits, key=lambda hit: hit.sort_key)
    return [hit for _, hit in zip(range(limit), merged, strict=False)]


def encode_cursor(key: SortKey) -> str:
    """An opaque cursor for the page after ``key``."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The sort key inside a cursor; InvalidInput if it was not made by ``encode_cursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, product_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(product_id, str) or not isinstance(score, int | float):
            raise ValueError
        return (float(score), product_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput("cursor is not valid", field="cursor") from None


def check_limit(limit: int) -> int:
    """A page size within bounds."""
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_SEARCH_LIMIT}", field="limit")
    return limit
