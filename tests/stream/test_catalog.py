"""Catalogue records and search events without services: validation reasons, normalisation, the export reader,
and a search folded into a session's state."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from streamrec.errors import ConfigError, DataError, InvalidEvent
from streamrec.events import EVENT_TYPES, CanonicalEvent
from streamrec.features.session_store import MAX_SESSION_QUERIES, SessionState
from streamrec.protos import events_pb2
from streamrec.protos.catalog_pb2 import Product
from streamrec.stream.catalog import REASONS, CatalogLimits, ProductChange, decode_product
from streamrec.stream.catalog_producer import parse_mapping, products
from streamrec.stream.decode import MAX_QUERY_CHARS, decode_event
from streamrec.stream.processor import apply_event

NOW = 1_800_000_000_000
LIMITS = CatalogLimits(max_record_bytes=16_384, max_future_skew_ms=60_000)


def product(**overrides: object) -> Product:
    fields: dict[str, object] = {"product_id": "p1", "title": "Drill", "available": True, "updated_ms": NOW - 5}
    fields.update(overrides)
    return Product(**fields)  # type: ignore[arg-type]


def decode(value: bytes | None, key: bytes | None = b"p1", timestamp_ms: int = NOW - 1) -> ProductChange:
    return decode_product(key, value, timestamp_ms, NOW, LIMITS)


def reason(value: bytes | None, key: bytes | None = b"p1") -> str:
    with pytest.raises(InvalidEvent) as info:
        decode(value, key)
    assert info.value.reason in REASONS and info.value.detail
    return info.value.reason


def test_a_good_product_is_stored_as_validated() -> None:
    raw = product(title="  Drill  ", brand=" Acme ", category="tools > drills", price=0.0).SerializeToString()
    change = decode(raw)
    assert (change.product_id, change.updated_ms) == ("p1", NOW - 5)
    stored = Product.FromString(change.product or b"")
    assert (stored.title, stored.brand, stored.category) == ("Drill", "Acme", "tools > drills")
    assert stored.HasField("price") and stored.price == 0.0


def test_an_unset_updated_ms_takes_the_records_timestamp() -> None:
    change = decode(product(updated_ms=0).SerializeToString(), timestamp_ms=NOW - 77)
    assert change.updated_ms == NOW - 77 and Product.FromString(change.product or b"").updated_ms == NOW - 77


def test_a_tombstone_deletes_the_product_its_key_names_at_the_records_time() -> None:
    assert decode(None, b"p9", timestamp_ms=NOW - 3) == ProductChange("p9", None, NOW - 3)


@pytest.mark.parametrize(
    ("value", "key", "expected"),
    [
        (b"\xff\xfe not a product", b"p1", "undecodable"),
        (product().SerializeToString(), b"\xff\xfe", "undecodable"),  # a key that is not UTF-8
        (product(title="x" * 20_000).SerializeToString(), b"p1", "oversize"),
        (b"", b"p1", "missing_field"),  # zero bytes: a Product with nothing set, not a tombstone
        (product(product_id="").SerializeToString(), b"p1", "missing_field"),
        (product(title="   ").SerializeToString(), b"p1", "missing_field"),
        (None, None, "missing_field"),  # a tombstone without a key
        (None, b"k" * 257, "bad_value"),
        (product(product_id="p" * 257).SerializeToString(), b"p" * 257, "bad_value"),
        (product(title="t" * 1001).SerializeToString(), b"p1", "bad_value"),
        (product(brand="b" * 257).SerializeToString(), b"p1", "bad_value"),
        (product(category="é" * 257).SerializeToString(), b"p1", "bad_value"),  # characters, not bytes
        (product(price=-0.01).SerializeToString(), b"p1", "bad_value"),
        (product(price=math.nan).SerializeToString(), b"p1", "bad_value"),
        (product(price=math.inf).SerializeToString(), b"p1", "bad_value"),
        (product(price=2e12).SerializeToString(), b"p1", "bad_value"),
        (product(updated_ms=-1).SerializeToString(), b"p1", "bad_value"),
        (product().SerializeToString(), b"p2", "key_mismatch"),
        (product().SerializeToString(), None, "key_mismatch"),
        (product(updated_ms=NOW + 3_600_000).SerializeToString(), b"p1", "future_timestamp"),
    ],
)
def test_every_bad_record_gets_its_reason(value: bytes | None, key: bytes | None, expected: str) -> None:
    assert reason(value, key) == expected


def test_the_longest_fields_are_accepted() -> None:
    raw = product(product_id="p" * 256, title="t" * 1000, brand="b" * 256, category="c" * 256, price=1e12)
    assert decode(raw.SerializeToString(), key=b"p" * 256).product_id == "p" * 256


# -- the export reader of `catalog publish` ---------------------------------------------------------------------
def test_mapping_defaults_and_overrides() -> None:
    mapping = parse_mapping(["product_id=product_uid", "title = product_title"])
    assert mapping["product_id"] == "product_uid" and mapping["title"] == "product_title"
    assert mapping["brand"] == "brand"
    for bad in ["nope=x", "title", "title="]:
        with pytest.raises(ConfigError):
            parse_mapping([bad])


def test_rows_become_products_or_counted_refusals() -> None:
    frame = pd.DataFrame(
        {
            "uid": ["a", "b", "c", "", "e", "f"],
            "title": ["A", "B", "", "D", "E", "F"],
            "price": ["1.5", "", "2", "3", "cheap", "4"],
            "available": ["yes", "0", "true", "1", "1", "maybe"],
        }
    )
    out = list(products(frame, parse_mapping(["product_id=uid"]), NOW, LIMITS))
    good = [p for p in out if isinstance(p, Product)]
    refused = [r.reason for r in out if isinstance(r, InvalidEvent)]
    assert [p.product_id for p in good] == ["a", "b"]
    assert good[0].price == 1.5 and good[0].available and not good[1].HasField("price") and not good[1].available
    assert all(p.updated_ms == NOW for p in good)  # no updated_ms column: now
    assert refused == ["missing_field", "missing_field", "bad_value", "bad_value"]


def test_no_available_column_means_available_and_updated_ms_is_kept() -> None:
    frame = pd.DataFrame({"product_id": ["a"], "title": ["A"], "updated_ms": ["1700000000000"]})
    [only] = list(products(frame, parse_mapping([]), NOW, LIMITS))
    assert isinstance(only, Product) and only.available and only.updated_ms == 1_700_000_000_000


def test_a_missing_required_column_is_a_data_error_at_once() -> None:
    with pytest.raises(DataError, match="product_id"):
        products(pd.DataFrame({"title": ["A"]}), parse_mapping([]), NOW, LIMITS)


# -- search events -----------------------------------------------------------------------------------------------
def search(query: str = "cordless drill", item_id: str = "", **kw: object) -> bytes:
    event = events_pb2.Event(
        event_id="e1", type=events_pb2.EVENT_TYPE_SEARCH, session_id="s1", item_id=item_id, query=query, ts_ms=NOW - 1
    )
    for name, value in kw.items():
        setattr(event, name, value)
    return event.SerializeToString()


def decode_raw(raw: bytes) -> CanonicalEvent:
    return decode_event(raw, NOW, 4096, max_future_skew_ms=60_000, max_age_ms=86_400_000)


def test_a_search_needs_a_query_and_no_item() -> None:
    event = decode_raw(search("  cordless drill "))
    assert (event.type, event.item_id, event.query) == ("search", "", "cordless drill")
    assert CanonicalEvent.from_proto(event.to_proto()) == event
    assert "search" in EVENT_TYPES


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (search(""), "missing_field"),
        (search("   "), "missing_field"),
        (search("q" * (MAX_QUERY_CHARS + 1)), "bad_value"),
        (search("ok", type=events_pb2.EVENT_TYPE_CLICK), "missing_field"),  # every other type needs its item
    ],
)
def test_search_events_are_validated(raw: bytes, expected: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_raw(raw)
    assert info.value.reason == expected


def test_the_longest_query_is_accepted() -> None:
    assert decode_raw(search("q" * MAX_QUERY_CHARS)).query == "q" * MAX_QUERY_CHARS


def test_a_search_is_kept_in_the_sessions_state_and_adds_no_item() -> None:
    state = SessionState(items=["i1"])
    for n in range(MAX_SESSION_QUERIES + 2):
        apply_event(state, CanonicalEvent(f"e{n}", "search", "s1", "", "", NOW + n, query=f"q{n}"), NOW + n)
    assert state.items == ["i1"] and state.events == MAX_SESSION_QUERIES + 2
    assert state.queries == [f"q{n}" for n in range(2, MAX_SESSION_QUERIES + 2)]  # the last ten, newest last
    assert SessionState.from_json(state.to_json()).queries == state.queries


def test_a_state_written_before_search_events_still_loads() -> None:
    old = b'{"offset":3,"partition":0,"updated_ms":5,"items":["i1"],"seen":[]}'
    state = SessionState.from_json(old)
    assert state.queries == [] and state.items == ["i1"] and state.offset == 3
