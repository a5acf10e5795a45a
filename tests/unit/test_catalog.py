"""Product validation, the per-shard search index, cross-shard merging and cursors."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.domain.catalog import (
    MAX_PRICE_CENTS,
    MAX_SEARCH_LIMIT,
    Product,
    ProductDraft,
    SearchHit,
    SearchIndex,
    SortKey,
    check_limit,
    decode_cursor,
    encode_cursor,
    listing_fingerprint,
    merge_hits,
    parse_draft,
    parse_patch,
    tokenize,
)
from marketplace.domain.errors import InvalidInput
from marketplace.domain.ids import owner_index
from tests.unit.factories import SELLER_A, SELLER_B, hex_id, make_product

pytestmark = pytest.mark.unit

VOCAB = ["red", "blue", "kettle", "lamp", "chair", "desk", "steel", "oak", "mug", "rug"]
CATEGORIES = ["kitchen", "garden", "office"]  # disjoint from VOCAB
SELLERS = [SELLER_A, SELLER_B, hex_id("usr", 0xC)]


# --- parse_draft / parse_patch ----------------------------------------------------------------


def draft(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Red kettle",
        "description": "Boils water",
        "category": "kitchen",
        "price_cents": 1999,
    }
    data.update(changes)
    return data


def test_parse_draft_accepts_and_strips() -> None:
    parsed = parse_draft(draft(name="  Red kettle  "))
    assert isinstance(parsed, ProductDraft)
    assert parsed.name == "Red kettle"
    assert parse_draft(draft(price_cents=0)).price_cents == 0
    assert parse_draft(draft(price_cents=MAX_PRICE_CENTS)).price_cents == MAX_PRICE_CENTS
    no_description = draft()
    del no_description["description"]
    assert parse_draft(no_description).description == ""


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price_cents": -1}, "price_cents"),
        ({"price_cents": MAX_PRICE_CENTS + 1}, "price_cents"),
        ({"price_cents": "lots"}, "price_cents"),
        ({"price_cents": 1.5}, "price_cents"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": None}, "name"),
        ({"category": ""}, "category"),
        ({"description": "x" * 5001}, "description"),
        ({"colour": "red"}, "colour"),
        ({"seller_id": SELLER_A}, "seller_id"),
        ({"version": 3}, "version"),
    ],
)
def test_parse_draft_rejects(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_draft(draft(**changes))
    assert info.value.details["field"] == field
    assert field in info.value.message


@pytest.mark.parametrize("missing", ["name", "category", "price_cents"])
def test_parse_draft_requires(missing: str) -> None:
    data = draft()
    del data[missing]
    with pytest.raises(InvalidInput) as info:
        parse_draft(data)
    assert info.value.details["field"] == missing


def test_a_listing_fingerprint_is_its_draft_and_stock() -> None:
    draft = parse_draft({"name": "Lamp", "category": "home", "price_cents": 900})
    same = parse_draft({"name": " Lamp ", "category": "home", "price_cents": 900})
    assert listing_fingerprint(draft, 3) == listing_fingerprint(same, 3)  # as the shard stores it
    assert listing_fingerprint(draft, 3) != listing_fingerprint(draft, 4)
    for change in ({"name": "Lamps"}, {"description": "x"}, {"category": "h"}, {"price_cents": 1}):
        assert listing_fingerprint(draft, 3) != listing_fingerprint(
            draft.model_copy(update=change), 3
        )


def test_parse_patch() -> None:
    assert parse_patch({}).model_dump(exclude_none=True) == {}
    assert parse_patch({"price_cents": 5}).price_cents == 5
    for changes, field in [
        ({"price_cents": -5}, "price_cents"),
        ({"name": ""}, "name"),
        ({"active": False}, "active"),
    ]:
        with pytest.raises(InvalidInput) as info:
            parse_patch(changes)
        assert info.value.details["field"] == field


def test_product_changes_bump_the_version() -> None:
    product = make_product(1, version=4)
    patched = product.patched(parse_patch({"price_cents": 5}))
    assert (patched.price_cents, patched.name, patched.version) == (5, product.name, 5)
    replaced = patched.replaced(parse_draft(draft()))
    assert (replaced.name, replaced.price_cents, replaced.version) == ("Red kettle", 1999, 6)
    assert (replaced.id, replaced.seller_id) == (product.id, product.seller_id)
    gone = replaced.deactivated()
    assert (gone.active, gone.version) == (False, 7)
    assert product.version == 4 and product.active


def test_check_limit() -> None:
    assert check_limit(1) == 1
    assert check_limit(MAX_SEARCH_LIMIT) == MAX_SEARCH_LIMIT
    for bad in (0, -1, MAX_SEARCH_LIMIT + 1):
        with pytest.raises(InvalidInput):
            check_limit(bad)


# --- the search index -------------------------------------------------------------------------


def test_tokenize() -> None:
    assert tokenize("Red-Kettle, 2L!") == ["red", "kettle", "2l"]
    assert tokenize("  ") == []


def ids_of(hits: list[SearchHit]) -> list[str]:
    return [hit.product.id for hit in hits]


def test_name_match_outranks_description_match() -> None:
    index = SearchIndex()
    in_description = make_product(1, name="Thing", description="a fine kettle")
    in_name = make_product(2, name="Kettle", description="boils water")
    index.upsert(in_description)
    index.upsert(in_name)
    index.upsert(make_product(3, name="Lamp", description="bright"))
    hits = index.search("KETTLE")
    assert ids_of(hits) == [in_name.id, in_description.id]
    assert hits[0].score > hits[1].score > 0


def test_filters_and_inactive_products() -> None:
    index = SearchIndex()
    a = make_product(1, name="red mug", category="Kitchen", seller_id=SELLER_A)
    b = make_product(2, name="red rug", category="garden", seller_id=SELLER_B)
    c = make_product(3, name="red lamp", category="kitchen", seller_id=SELLER_B)
    d = make_product(4, name="red desk", category="kitchen", seller_id=SELLER_B, active=False)
    for product in (a, b, c, d):
        index.upsert(product)
    assert set(ids_of(index.search("red"))) == {a.id, b.id, c.id}
    assert set(ids_of(index.search("red", category="KITCHEN"))) == {a.id, c.id}
    assert set(ids_of(index.search("red", seller_id=SELLER_B))) == {b.id, c.id}
    assert ids_of(index.search("", category="kitchen", seller_id=SELLER_B)) == [c.id]
    assert set(ids_of(index.search("red", include_inactive=True))) == {a.id, b.id, c.id, d.id}
    assert index.search("desk") == []
    assert index.search("nothing matches this") == []
    # Empty query: every active product, score 0, in id order.
    assert ids_of(index.search("")) == [a.id, b.id, c.id]
    assert {hit.score for hit in index.search("")} == {0.0}


def test_upsert_reindexes_and_remove_forgets() -> None:
    index = SearchIndex()
    product = make_product(1, name="oak desk", description="solid")
    index.upsert(product)
    assert len(index) == 1
    renamed = product.patched(parse_patch({"name": "steel chair"}))
    index.upsert(renamed)
    assert len(index) == 1
    assert index.search("oak") == []
    assert [hit.product for hit in index.search("chair")] == [renamed]
    deactivated = renamed.deactivated()
    index.upsert(deactivated)
    assert index.search("chair") == []
    index.remove(product.id)
    index.remove(product.id)  # idempotent
    assert len(index) == 0
    assert index.search("", include_inactive=True) == []


@st.composite
def catalogs(draw: st.DrawFn) -> list[Product]:
    numbers = draw(st.lists(st.integers(min_value=1, max_value=2**64), unique=True, max_size=40))
    products = []
    for n in numbers:
        name = draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3, unique=True))
        description = draw(st.lists(st.sampled_from(VOCAB), max_size=4, unique=True))
        products.append(
            make_product(
                n,
                name=" ".join(name).title(),
                description=" ".join(description),
                category=draw(st.sampled_from(CATEGORIES)),
                seller_id=draw(st.sampled_from(SELLERS)),
                active=draw(st.booleans().map(lambda b: b or draw(st.booleans()))),
            )
        )
    return products


queries = st.lists(st.sampled_from([*VOCAB, "absent"]), max_size=2).map(" ".join)
categories = st.none() | st.sampled_from([*CATEGORIES, "KITCHEN"])
sellers = st.none() | st.sampled_from(SELLERS)


def words_of(product: Product) -> set[str]:
    return set(f"{product.name} {product.description} {product.category}".lower().split())


def expected_matches(
    products: list[Product], query: str, category: str | None, seller_id: str | None
) -> set[str]:
    terms = set(query.split())
    return {
        p.id
        for p in products
        if p.active
        and (not terms or terms & words_of(p))
        and (category is None or p.category == category.lower())
        and (seller_id is None or p.seller_id == seller_id)
    }


Search = Callable[[int, SortKey | None], list[SearchHit]]


def page_through(search: Search, page_size: int) -> list[SearchHit]:
    """Follow cursors (through their opaque string form) until a short page."""
    collected: list[SearchHit] = []
    after: SortKey | None = None
    for _ in range(1000):
        page = search(page_size, after)
        assert len(page) <= page_size
        collected += page
        if len(page) < page_size:
            return collected
        after = decode_cursor(encode_cursor(page[-1].sort_key))
    raise AssertionError("pagination did not end")


@settings(max_examples=200, deadline=None)
@given(
    products=catalogs(),
    query=queries,
    category=categories,
    seller_id=sellers,
    page_size=st.integers(min_value=1, max_value=7),
)
def test_cursor_pagination_visits_every_match_once(
    products: list[Product], query: str, category: str | None, seller_id: str | None, page_size: int
) -> None:
    index = SearchIndex()
    for product in products:
        index.upsert(product)

    def search(limit: int, after: SortKey | None) -> list[SearchHit]:
        return index.search(query, category=category, seller_id=seller_id, limit=limit, after=after)

    paged = page_through(search, page_size)
    ids = ids_of(paged)
    assert len(ids) == len(set(ids)), "a product appeared on two pages"
    assert set(ids) == expected_matches(products, query, category, seller_id)
    keys = [hit.sort_key for hit in paged]
    assert keys == sorted(keys)
    assert ids == ids_of(search(len(products) + 1, None))


@settings(max_examples=200, deadline=None)
@given(products=catalogs(), term=st.sampled_from(VOCAB))
def test_name_matches_rank_before_description_only_matches(
    products: list[Product], term: str
) -> None:
    index = SearchIndex()
    for product in products:
        index.upsert(product)
    hits = index.search(term, limit=MAX_SEARCH_LIMIT)
    in_name = [term in tokenize(hit.product.name) for hit in hits]
    # Once a description-only match appears, no name match may follow it.
    assert in_name == sorted(in_name, reverse=True)
    for hit, named in zip(hits, in_name, strict=True):
        assert named or term in tokenize(hit.product.description)


@settings(max_examples=200, deadline=None)
@given(
    products=catalogs(),
    query=queries,
    category=categories,
    seller_id=sellers,
    shard_count=st.integers(min_value=1, max_value=4),
    page_size=st.integers(min_value=1, max_value=7),
)
def test_merged_shards_page_like_one_big_index(
    products: list[Product],
    query: str,
    category: str | None,
    seller_id: str | None,
    shard_count: int,
    page_size: int,
) -> None:
    whole = SearchIndex()
    shards = [SearchIndex() for _ in range(shard_count)]
    for product in products:
        whole.upsert(product)
        shards[owner_index(product.id, shard_count)].upsert(product)
    assert sum(len(shard) for shard in shards) == len(whole)

    def one_index(limit: int, after: SortKey | None) -> list[SearchHit]:
        return whole.search(query, category=category, seller_id=seller_id, limit=limit, after=after)

    def sharded(limit: int, after: SortKey | None) -> list[SearchHit]:
        per_shard = [
            shard.search(query, category=category, seller_id=seller_id, limit=limit, after=after)
            for shard in shards
        ]
        return merge_hits(per_shard, limit)

    expected = page_through(one_index, page_size)
    got = page_through(sharded, page_size)
    assert ids_of(got) == ids_of(expected)
    assert [hit.score for hit in got] == [hit.score for hit in expected]


def test_merge_hits_takes_the_best_k() -> None:
    def hit(n: int, score: float) -> SearchHit:
        return SearchHit(product=make_product(n), score=score)

    first = [hit(1, 5.0), hit(3, 2.0), hit(5, 0.0)]
    second = [hit(2, 5.0), hit(4, 1.0)]
    merged = merge_hits([first, second, []], 4)
    assert [(h.product.id, h.score) for h in merged] == [
        (hex_id("prd", 1), 5.0),
        (hex_id("prd", 2), 5.0),
        (hex_id("prd", 3), 2.0),
        (hex_id("prd", 4), 1.0),
    ]
    assert merge_hits([first, second], 0) == []
    assert len(merge_hits([first, second], 100)) == 5
    assert merge_hits([], 3) == []


# --- cursors ----------------------------------------------------------------------------------

ids_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(score=st.floats(allow_nan=False, allow_infinity=False), product_id=ids_text)
def test_cursor_round_trip(score: float, product_id: str) -> None:
    cursor = encode_cursor((score, product_id))
    assert isinstance(cursor, str)
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == (score, product_id)


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "!!!",
        "abc",
        "a",
        "not a cursor at all",
        "é",
        "\x00",
        encode_cursor((1.5, "prd_x"))[:-3],
        b64([1.0]),
        b64([1.0, "x", 3]),
        b64(["1.0", "x"]),
        b64([1.0, 2]),
        b64([None, "x"]),
        b64({"score": 1.0, "id": "x"}),
        b64("ab"),
        b64(7),
        b64(None),
        base64.urlsafe_b64encode(b"\xff\xfe\x00garbage").decode(),
    ],
)
def test_decode_cursor_rejects_garbage(garbage: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_cursor(garbage)
    assert info.value.details == {"field": "cursor"}


@settings(max_examples=200, deadline=None)
@given(garbage=st.text(max_size=60) | st.binary(max_size=40).map(lambda b: b64(b.hex())))
def test_decode_cursor_never_fails_otherwise(garbage: str) -> None:
    """Any string is either a well-formed sort key or InvalidInput, never another error."""
    try:
        score, product_id = decode_cursor(garbage)
    except InvalidInput:
        return
    assert isinstance(score, float)
    assert isinstance(product_id, str)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(CATEGORIES), st.sampled_from(SELLERS), st.booleans(), st.booleans()
        ),
        max_size=30,
    ),
    st.one_of(st.none(), st.sampled_from(CATEGORIES), st.just("Nowhere")),
    st.one_of(st.none(), st.sampled_from(SELLERS)),
    st.integers(min_value=1, max_value=7),
    st.booleans(),
)
def test_the_empty_query_pages_every_match_in_id_order_from_sorted_ids(
    rows: list[tuple[str, str, bool, bool]],
    category: str | None,
    seller_id: str | None,
    limit: int,
    include_inactive: bool,
) -> None:
    # Browsing (no terms) reads sorted ids instead of scoring every product; its pages must be
    # what scoring them all gave: every match, score 0, in id order, each page after the last.
    index = SearchIndex()
    products = []
    for n, (product_category, seller, active, removed) in enumerate(rows, start=1):
        product = make_product(n, category=product_category, seller_id=seller, active=active)
        index.upsert(product)
        index.upsert(product.patched(parse_patch({"category": product_category.upper()})))
        if removed:
            index.remove(product.id)
        else:
            products.append(product)
    expected = sorted(
        p.id
        for p in products
        if (include_inactive or p.active)
        and (category is None or p.category.lower() == category.lower())
        and (seller_id is None or p.seller_id == seller_id)
    )
    seen: list[str] = []
    after: SortKey | None = None
    while True:
        page = index.search(
            "",
            category=category,
            seller_id=seller_id,
            limit=limit,
            after=after,
            include_inactive=include_inactive,
        )
        assert all(hit.score == 0.0 for hit in page)
        seen.extend(ids_of(page))
        if len(page) < limit:
            break
        after = page[-1].sort_key
    assert seen == expected
    # A cursor from a scored page (negative first key) precedes every score-0 hit; one past
    # them (positive) follows them all.
    assert ids_of(index.search("", limit=100, after=(-3.0, "zzz"), include_inactive=True)) == (
        sorted(p.id for p in products)
    )
    assert index.search("", after=(1.0, ""), include_inactive=True) == []
