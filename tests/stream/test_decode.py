"""Decoding and validation of raw records: every bad shape gets its own dead-letter reason."""

from __future__ import annotations

import pytest

from streamrec.errors import InvalidEvent
from streamrec.events import CanonicalEvent
from streamrec.protos import events_pb2
from streamrec.stream.decode import decode_event

NOW = 1_800_000_000_000


def decode(raw: bytes | None, max_bytes: int = 4096) -> CanonicalEvent:
    return decode_event(raw, NOW, max_bytes, max_future_skew_ms=60_000, max_age_ms=86_400_000)


def good(**overrides: object) -> CanonicalEvent:
    fields = {
        "event_id": "e1",
        "type": "click",
        "session_id": "s1",
        "user_id": "",
        "item_id": "i1",
        "ts_ms": NOW - 1000,
        "price": 9.5,
    }
    fields.update(overrides)
    return CanonicalEvent(**fields)  # type: ignore[arg-type]


def reason_of(raw: bytes | None, **kw: int) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode(raw, **kw)
    return info.value.reason


def test_round_trip_of_a_good_event() -> None:
    event = good(category_id="c1", quantity=2)
    assert decode(event.to_bytes()) == event


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "undecodable"),
        (b"", "undecodable"),  # zero bytes parse as an Event with every field unset; it is still no event
        (b"\xff\xff\xff\xff", "undecodable"),
        (good(event_id="").to_bytes(), "missing_field"),
        (good(session_id="").to_bytes(), "missing_field"),
        (good(item_id="").to_bytes(), "missing_field"),
        (good(ts_ms=0).to_bytes(), "missing_field"),
        (good(price=-1.0).to_bytes(), "bad_value"),
        (good(item_id="x" * 300).to_bytes(), "bad_value"),
        (good(ts_ms=NOW + 3_600_000).to_bytes(), "future_timestamp"),
        (good(ts_ms=NOW - 2 * 86_400_000).to_bytes(), "stale_timestamp"),
    ],
)
def test_bad_records_get_their_reason(raw: bytes | None, reason: str) -> None:
    assert reason_of(raw) == reason


def test_nan_price_is_a_bad_value() -> None:
    message = good().to_proto()
    message.price = float("nan")
    assert reason_of(message.SerializeToString()) == "bad_value"


def test_unknown_and_unset_event_types() -> None:
    message = good().to_proto()
    message.type = 99  # type: ignore[assignment]
    assert reason_of(message.SerializeToString()) == "unknown_type"
    message.type = events_pb2.EVENT_TYPE_UNSPECIFIED
    assert reason_of(message.SerializeToString()) == "missing_field"


def test_oversize_payload_is_rejected_before_parsing() -> None:
    assert reason_of(good().to_bytes(), max_bytes=10) == "oversize"
