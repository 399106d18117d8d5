"""Feast's Redis bytes, checked against byte strings Feast 0.67 itself produced (no services, no Feast import)."""

from __future__ import annotations

import math

import pytest

from streamrec.errors import ConfigError
from streamrec.features import codec
from streamrec.features.config import redis_connection_string

# Produced by feast.infra.online_stores.helpers._redis_key / _mmh3 and feast.types.Value.SerializeToString.
FEAST_KEY_ITEM_E1_P = (
    b"\x01\x00\x00\x00\x02\x00\x00\x00\x07\x00\x00\x00item_id\x02\x00\x00\x00\x03\x00\x00\x00\xc3\xa91p"
)
FEAST_FIELDS = {
    ("session_features", "recent_items"): b"\xf5\xce\xdb\x82",
    ("item_features", "trending_score"): b"z\xe6P\xcb",
    ("user_features", "top_category_counts"): b"6\xee\x0b\xab",
}
FEAST_VALUES = [
    ("double", 0.5, b")\x00\x00\x00\x00\x00\x00\xe0?"),
    ("int64", -2, b" \xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
    ("int64", 0, b" \x00"),
    ("int64", 300, b" \xac\x02"),
    ("string", "ü", b"\x12\x02\xc3\xbc"),
    ("string_list", [], b"b\x00"),
    ("string_list", ["a", "b"], b"b\x06\n\x01a\n\x01b"),
    ("int64_list", [], b"r\x00"),
    ("int64_list", [1, -1], b"r\r\n\x0b\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
]
# Timestamp.FromDatetime(2024-01-02T03:04:05.678Z)
FEAST_TS = (1704164645678, b"\x08\xa5\xfa\xcd\xac\x06\x10\x80\xeb\xa5\xc3\x02")


def test_redis_key_matches_feast() -> None:
    assert codec.redis_key(codec.entity_key_prefix("item_id"), "é1", b"p") == FEAST_KEY_ITEM_E1_P


@pytest.mark.parametrize(("view", "feature"), list(FEAST_FIELDS))
def test_hashed_field_matches_feast(view: str, feature: str) -> None:
    assert codec.hashed_field(view, feature) == FEAST_FIELDS[(view, feature)]


@pytest.mark.parametrize(("kind", "value", "raw"), FEAST_VALUES)
def test_value_bytes_match_feast_both_ways(kind: codec.Kind, value: object, raw: bytes) -> None:
    assert codec.ENCODERS[kind](value) == raw
    assert codec.DECODERS[kind](raw) == value
    assert codec.decode_value(raw) == value


def test_timestamp_matches_feast() -> None:
    ts_ms, raw = FEAST_TS
    assert codec.encode_timestamp_ms(ts_ms) == raw
    assert codec.decode_timestamp_ms(raw) == ts_ms
    assert codec.encode_timestamp_ms(0) == b""  # protobuf omits zero fields


@pytest.mark.parametrize("kind", list(codec.ENCODERS))
def test_none_is_an_empty_value(kind: codec.Kind) -> None:
    assert codec.ENCODERS[kind](None) == b""
    assert codec.DECODERS[kind](b"") is None
    assert codec.DECODERS[kind](None) is None


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("int64", 127),
        ("int64", 128),
        ("int64", 16383),
        ("int64", 16384),
        ("int64", 2**63 - 1),
        ("int64", -(2**63)),
        ("double", -1e308),
        ("double", math.inf),
        ("string", "x" * 300),  # a two-byte length
        ("string_list", ["ß", "", "y" * 200]),
        ("int64_list", [0, 2**40, -(2**63)]),
    ],
)
def test_round_trip_of_extremes(kind: codec.Kind, value: object) -> None:
    assert codec.DECODERS[kind](codec.ENCODERS[kind](value)) == value


def test_varint_lengths_at_the_boundaries() -> None:
    assert [len(codec.varint(n)) for n in (127, 128, 16383, 16384, 2**64 - 1)] == [1, 2, 2, 3, 10]


def test_a_bare_string_is_not_a_string_list() -> None:
    with pytest.raises(TypeError):
        codec.ENCODERS["string_list"]("abc")


def test_nan_is_written_as_null_like_feast_push() -> None:
    assert codec.ENCODERS["double"](math.nan) == b""


def test_unpacked_int64_list_is_decoded() -> None:
    # Other protobuf writers may emit repeated int64 unpacked (one tag per element); parsers must accept both.
    assert codec.decode_value(b"r\x04\x08\x05\x08\x07") == [5, 7]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379,db=0"),
        ("redis://localhost/3", "localhost:6379,db=3"),
        ("redis://redis:6380", "redis:6380,db=0"),
        ("rediss://u:p%40ss@cache:6390/1", "cache:6390,db=1,username=u,password=p@ss,ssl=true"),
    ],
)
def test_redis_url_to_feast_connection_string(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected


@pytest.mark.parametrize(
    "url", ["http://x:1/0", "redis:///0", "redis://h:1/x", "redis://h:1?db=a", "redis://u:a,b@h/0"]
)
def test_bad_redis_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        redis_connection_string(url)
