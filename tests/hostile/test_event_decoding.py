"""Hostile bytes and field values against event decoding: every input is a CanonicalEvent or an InvalidEvent whose
reason is one of the dead-letter reasons, never another exception, and the reason is the one the policy names."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamrec.errors import InvalidEvent
from streamrec.events import CanonicalEvent
from streamrec.protos import events_pb2
from streamrec.stream.decode import MAX_ID_CHARS, MAX_PRICE, MAX_QUANTITY, MAX_QUERY_CHARS, REASONS, decode_event
from tests.hostile.records import (
    AGE_MS,
    MAX_BYTES,
    NOW,
    SKEW_MS,
    STRING_FIELDS,
    event_types,
    good_event,
    id_text,
    messages,
    quantities,
    string_field_bytes,
    timestamps,
    varint_field_bytes,
)

KNOWN_TYPES = {1: "view", 2: "click", 3: "add_to_cart", 4: "purchase", 5: "search"}
SEARCH = 5  # the one type without an item: it needs a query instead
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(raw: bytes | None) -> CanonicalEvent | InvalidEvent:
    """The outcome of decoding as a value: the event, or the InvalidEvent it raised (anything else propagates)."""
    try:
        return decode_event(raw, NOW, MAX_BYTES, SKEW_MS, AGE_MS)
    except InvalidEvent as bad:
        return bad


def expected_reason(message: events_pb2.Event, size: int) -> str | None:
    """The policy of stream/decode.py written out plainly, in its documented order (None: a valid event)."""
    if size == 0:
        return "undecodable"
    if size > MAX_BYTES:
        return "oversize"
    for name in ("event_id", "session_id", "item_id"):
        value = getattr(message, name)
        if not value and not (name == "item_id" and message.type == SEARCH):
            return "missing_field"
        if len(value) > MAX_ID_CHARS:
            return "bad_value"
    if len(message.user_id) > MAX_ID_CHARS or len(message.category_id) > MAX_ID_CHARS:
        return "bad_value"
    if message.type == 0:
        return "missing_field"
    if message.type not in KNOWN_TYPES:
        return "unknown_type"
    if len(message.query.strip()) > MAX_QUERY_CHARS:
        return "bad_value"
    if message.type == SEARCH and not message.query.strip():
        return "missing_field"
    if message.HasField("price") and not (math.isfinite(message.price) and 0 <= message.price <= MAX_PRICE):
        return "bad_value"
    if message.quantity > MAX_QUANTITY:
        return "bad_value"
    if message.ts_ms <= 0:
        return "missing_field"
    if message.ts_ms > NOW + SKEW_MS:
        return "future_timestamp"
    if message.ts_ms < NOW - AGE_MS:
        return "stale_timestamp"
    return None


@PROPERTY
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x08")  # a truncated varint
@example(b"\x0a\xff\xff\xff\xff\x0f")  # a length far past the end
@example(b"\xff" * 32)
def test_arbitrary_bytes_are_an_event_or_a_dead_letter_reason(raw: bytes) -> None:
    outcome = decode(raw)
    assert isinstance(outcome, CanonicalEvent) or outcome.reason in REASONS


@PROPERTY
@given(messages())
def test_every_field_value_gets_the_reason_the_policy_names(message: events_pb2.Event) -> None:
    check_outcome(message)


def check_outcome(message: events_pb2.Event) -> None:
    """Decoding `message` gives the event back, or exactly the reason `expected_reason` names, with a detail."""
    raw = message.SerializeToString()
    outcome = decode(raw)
    expected = expected_reason(message, len(raw))
    if expected is None:
        assert isinstance(outcome, CanonicalEvent), outcome
        assert outcome.to_proto() == _canonical(message)
    else:
        assert isinstance(outcome, InvalidEvent), (expected, outcome)
        assert outcome.reason == expected, outcome
        assert outcome.detail  # a clear error: what was wrong, not only a label


FIELD_VALUES: dict[str, st.SearchStrategy[object]] = {
    "event_id": id_text(),
    "session_id": id_text(),
    "user_id": id_text(),
    "item_id": id_text(),
    "category_id": id_text(),
    "type": event_types(),
    "ts_ms": timestamps(),
    "price": st.floats(allow_nan=True, allow_infinity=True),
    "quantity": quantities(),
}


@PROPERTY
@given(st.sampled_from(sorted(FIELD_VALUES)), st.data())
def test_one_hostile_field_in_a_good_event_gets_its_reason(name: str, data: st.DataObject) -> None:
    """Every check reached: a good event with one field replaced by an arbitrary value of its type."""
    message = good_event(user_id="u1", category_id="c1", price=1.0, quantity=1)
    setattr(message, name, data.draw(FIELD_VALUES[name], label=name))
    check_outcome(message)


def _canonical(message: events_pb2.Event) -> events_pb2.Event:
    """`message` as CanonicalEvent.to_proto writes it back: quantity always present, an unset one read as 1."""
    out = events_pb2.Event()
    out.CopyFrom(message)
    out.quantity = message.quantity if message.HasField("quantity") else 1
    if out.HasField("category_id") and not out.category_id:
        out.ClearField("category_id")
    return out


@PROPERTY
@given(st.binary(min_size=1, max_size=4096), st.data())
def test_damaged_valid_records_never_escape_the_reasons(noise: bytes, data: st.DataObject) -> None:
    """A valid record truncated, overwritten or spliced with noise at any position."""
    raw = good_event(category_id="c1", price=9.5, quantity=2).SerializeToString()
    at = data.draw(st.integers(0, len(raw)))
    damaged = data.draw(
        st.sampled_from(
            [
                raw[:at],
                raw[:at] + noise,
                raw[:at] + noise + raw[at:],
                raw[:at] + noise[: len(raw) - at] + raw[at + len(noise) :],
            ]
        )
    )
    outcome = decode(damaged)
    assert isinstance(outcome, CanonicalEvent) or outcome.reason in REASONS


def _invalid_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@PROPERTY
@given(st.sampled_from(sorted(STRING_FIELDS)), st.binary(min_size=1, max_size=64).filter(_invalid_utf8))
@example("event_id", b"\xc0\x80")  # overlong NUL
@example("session_id", b"\xed\xa0\x80")  # a UTF-16 surrogate
@example("item_id", b"\xf4\x90\x80\x80")  # past U+10FFFF
@example("category_id", b"\xe2\x82")  # truncated
def test_malformed_utf8_in_any_string_field_is_undecodable(name: str, payload: bytes) -> None:
    """A hand-built record: a valid event, then the same field again with bytes that are not UTF-8."""
    raw = good_event(user_id="u1", category_id="c1").SerializeToString() + string_field_bytes(
        STRING_FIELDS[name], payload
    )
    outcome = decode(raw)
    assert isinstance(outcome, InvalidEvent) and outcome.reason == "undecodable", outcome
    assert "UTF-8" in outcome.detail


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (good_event(session_id="s" * 10_000), "bad_value"),  # huge, but under the size limit
        (good_event(item_id="i" * 1_000_000), "oversize"),  # huge, and over it: rejected before parsing
        (good_event(user_id="u" * (MAX_ID_CHARS + 1)), "bad_value"),
        (good_event(category_id="é" * (MAX_ID_CHARS + 1)), "bad_value"),  # characters, not bytes, are counted
        (good_event(price=math.nan), "bad_value"),
        (good_event(price=math.inf), "bad_value"),
        (good_event(price=-math.inf), "bad_value"),
        (good_event(price=-0.01), "bad_value"),
        (good_event(price=MAX_PRICE * 10), "bad_value"),
        (good_event(quantity=MAX_QUANTITY + 1), "bad_value"),
        (good_event(quantity=2**32 - 2), "bad_value"),  # -2 from a producer that wrote it into the uint32
        (good_event(quantity=2**32 - 1), "bad_value"),
        (good_event(type=2**31 - 1), "unknown_type"),
        (good_event(type=-1), "unknown_type"),
        (good_event(ts_ms=2**63 - 1), "future_timestamp"),
        (good_event(ts_ms=-(2**63)), "missing_field"),
    ],
    ids=lambda v: "" if isinstance(v, events_pb2.Event) else v,
)
def test_huge_ids_nan_prices_and_extreme_numbers(message: events_pb2.Event, reason: str) -> None:
    outcome = decode(message.SerializeToString())
    assert isinstance(outcome, InvalidEvent) and outcome.reason == reason, outcome


def test_a_nan_with_a_payload_written_by_hand_is_a_bad_value() -> None:
    """Not every producer writes the canonical NaN: a signalling NaN with payload bits, as raw wire bytes."""
    signalling_nan = struct.pack("<Q", 0x7FF0_0000_0000_0001)
    raw = good_event().SerializeToString() + bytes([7 << 3 | 1]) + signalling_nan
    outcome = decode(raw)
    assert isinstance(outcome, InvalidEvent) and outcome.reason == "bad_value", outcome


def test_a_negative_quantity_from_another_language_is_a_bad_value() -> None:
    """Java's and Go's protobuf write an int32 -2 as a ten-byte sign-extended varint; the uint32 field reads it back
    as 4,294,967,294. Written by hand as those wire bytes, it is refused, not applied as one enormous order."""
    raw = good_event().SerializeToString() + varint_field_bytes(8, 2**64 - 2)  # ten bytes: -2 as an int64
    parsed = events_pb2.Event.FromString(raw)
    assert parsed.quantity == 4_294_967_294
    outcome = decode(raw)
    assert isinstance(outcome, InvalidEvent) and outcome.reason == "bad_value", outcome
    assert "4294967294" in outcome.detail and str(MAX_QUANTITY) in outcome.detail


def test_the_largest_quantity_and_price_are_accepted() -> None:
    outcome = decode(good_event(quantity=MAX_QUANTITY, price=MAX_PRICE).SerializeToString())
    assert isinstance(outcome, CanonicalEvent) and outcome.quantity == MAX_QUANTITY, outcome


@pytest.mark.parametrize("raw", [b"", None], ids=["zero bytes", "null"])
def test_an_empty_value_is_undecodable(raw: bytes | None) -> None:
    """As docs/streaming.md says: an empty value is not an event whose every field is unset (missing_field)."""
    outcome = decode(raw)
    assert isinstance(outcome, InvalidEvent), outcome
    assert (outcome.reason, outcome.detail) == ("undecodable", "empty value")
