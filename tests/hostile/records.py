"""Builders and hypothesis strategies of hostile event records, shared by the hostile-input tests."""

from __future__ import annotations

from typing import cast

from hypothesis import strategies as st

from streamrec.protos import events_pb2
from streamrec.stream.decode import MAX_QUANTITY

NOW = 1_800_000_000_000
MAX_BYTES = 16_384
SKEW_MS = 600_000
AGE_MS = 400 * 86_400_000
STRING_FIELDS = {"event_id": 1, "session_id": 3, "user_id": 4, "item_id": 5, "category_id": 6}


def string_field_bytes(field_number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field written by hand, so its payload can be anything (bad UTF-8 included)."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def varint_field_bytes(field_number: int, value: int) -> bytes:
    """A varint protobuf field written by hand, so it can be as long as another language's encoder writes it."""
    return _varint(field_number << 3) + _varint(value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def good_event(**overrides: object) -> events_pb2.Event:
    fields: dict[str, object] = {"event_id": "e1", "type": 2, "session_id": "s1", "item_id": "i1", "ts_ms": NOW - 1}
    fields.update(overrides)
    return events_pb2.Event(**fields)  # type: ignore[arg-type]


def id_text(max_size: int = 300) -> st.SearchStrategy[str]:
    """Ids across the 256-character limit, mostly usable so that the later checks are reached too: short,
    empty, or long, in any Unicode (surrogates cannot be encoded, so text() leaves them out)."""
    short = st.text(min_size=1, max_size=12)
    return st.one_of(short, short, short, st.just(""), st.text(min_size=250, max_size=max_size))


def event_types() -> st.SearchStrategy[int]:
    known = st.integers(1, 4)
    return st.one_of(known, known, known, st.integers(0, 5), st.integers(-(2**31), 2**31 - 1))


def timestamps() -> st.SearchStrategy[int]:
    """Event times inside the accepted window, just outside it on either side, and any int64."""
    near = st.integers(NOW - AGE_MS - 10, NOW + SKEW_MS + 10)
    ahead = st.integers(NOW + SKEW_MS - 10, NOW + 30 * 86_400_000)
    edges = st.sampled_from([0, -1, NOW - AGE_MS, NOW + SKEW_MS])
    return st.one_of(near, near, ahead, edges, st.integers(-(2**63), 2**63 - 1))


def quantities() -> st.SearchStrategy[int]:
    """Quantities across MAX_QUANTITY, mostly under it, and any uint32 (negatives as they arrive: 2**32 - n)."""
    usual = st.integers(0, MAX_QUANTITY + 10)
    edges = st.sampled_from([0, MAX_QUANTITY, MAX_QUANTITY + 1, 2**31, 2**32 - 2, 2**32 - 1])
    return st.one_of(usual, usual, edges, st.integers(0, 2**32 - 1))


@st.composite
def messages(draw: st.DrawFn) -> events_pb2.Event:
    message = events_pb2.Event(
        event_id=draw(id_text()),
        session_id=draw(id_text()),
        user_id=draw(id_text()),
        item_id=draw(id_text()),
        type=cast("events_pb2.EventType", draw(event_types())),
        ts_ms=draw(timestamps()),
    )
    category = draw(st.none() | id_text())
    if category is not None:
        message.category_id = category
    price = draw(st.none() | st.floats(allow_nan=True, allow_infinity=True))
    if price is not None:
        message.price = price
    quantity = draw(st.none() | quantities())
    if quantity is not None:
        message.quantity = quantity
    return message
