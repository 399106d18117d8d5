"""Decode and validate one raw record into a CanonicalEvent, or raise InvalidEvent with a dead-letter reason.

Reasons (the `reason` header of a dead letter and the label of its counter):
undecodable, oversize, missing_field, unknown_type, bad_value, future_timestamp, stale_timestamp.

Every type needs an item_id but SEARCH, which needs a `query` of 1 to MAX_QUERY_CHARS characters (after trimming)
instead; a query on another type is checked for length alike and kept, but nothing uses it.
"""

from __future__ import annotations

import dataclasses
import math

from google.protobuf.message import DecodeError

from streamrec.errors import InvalidEvent
from streamrec.events import ITEMLESS_TYPES, CanonicalEvent
from streamrec.protos import events_pb2

MAX_ID_CHARS = 256
MAX_QUERY_CHARS = 256
# quantity is a uint32: a producer that writes -1 or -2 as an int32 varint (Java, Go) sends 4,294,967,295 or
# 4,294,967,294, which would otherwise count as one huge order. No basket line holds more than this.
MAX_QUANTITY = 10_000
MAX_PRICE = 1e12  # above any price in any currency; catches garbage such as a misread int64 or 1e308
REQUIRED_FIELDS = ("event_id", "session_id", "item_id")  # item_id: but for a SEARCH
REASONS = (
    "undecodable",
    "oversize",
    "missing_field",
    "unknown_type",
    "bad_value",
    "future_timestamp",
    "stale_timestamp",
)


def decode_event(
    raw: bytes | None,
    now_ms: int,
    max_bytes: int,
    max_future_skew_ms: int,
    max_age_ms: int,
) -> CanonicalEvent:
    if not raw:  # None (a null value) or b"": nothing to decode, not an event with every field unset
        raise InvalidEvent("undecodable", "empty value")
    if len(raw) > max_bytes:
        raise InvalidEvent("oversize", f"{len(raw)} bytes > limit {max_bytes}")
    message = events_pb2.Event()
    try:
        message.ParseFromString(raw)
    except (DecodeError, RuntimeWarning, ValueError) as exc:  # protobuf raises DecodeError; upb may add others
        raise InvalidEvent("undecodable", f"not a streamrec.v1.Event: {exc}") from exc
    _check_ids(message)
    if message.type == events_pb2.EVENT_TYPE_UNSPECIFIED:
        raise InvalidEvent("missing_field", "type is unset")
    event = CanonicalEvent.from_proto(message)  # raises unknown_type
    event = _check_query(event)
    _check_values(event)
    if event.ts_ms <= 0:
        raise InvalidEvent("missing_field", "ts_ms is unset")
    if event.ts_ms > now_ms + max_future_skew_ms:
        raise InvalidEvent("future_timestamp", f"ts_ms {event.ts_ms} is {event.ts_ms - now_ms} ms ahead")
    if event.ts_ms < now_ms - max_age_ms:
        raise InvalidEvent("stale_timestamp", f"ts_ms {event.ts_ms} is older than {max_age_ms} ms")
    return event


def _check_ids(message: events_pb2.Event) -> None:
    for name in REQUIRED_FIELDS:
        value = getattr(message, name)
        if not value:
            if name == "item_id" and message.type == events_pb2.EVENT_TYPE_SEARCH:
                continue
            raise InvalidEvent("missing_field", f"{name} is empty")
        if len(value) > MAX_ID_CHARS:
            raise InvalidEvent("bad_value", f"{name} is {len(value)} chars > {MAX_ID_CHARS}")
    if len(message.user_id) > MAX_ID_CHARS or len(message.category_id) > MAX_ID_CHARS:
        raise InvalidEvent("bad_value", f"user_id or category_id longer than {MAX_ID_CHARS} chars")


def _check_query(event: CanonicalEvent) -> CanonicalEvent:
    """The event with its query trimmed; a search needs one, and no query may be longer than MAX_QUERY_CHARS."""
    query = event.query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidEvent("bad_value", f"query is {len(query)} chars > {MAX_QUERY_CHARS}")
    if not query and event.type in ITEMLESS_TYPES:
        raise InvalidEvent("missing_field", f"query of a {event.type} event is empty")
    return event if query == event.query else dataclasses.replace(event, query=query)


def _check_values(event: CanonicalEvent) -> None:
    price = event.price
    if price is not None and not (math.isfinite(price) and 0 <= price <= MAX_PRICE):
        raise InvalidEvent("bad_value", f"price {price} is not a finite number in 0..{MAX_PRICE:g}")
    if not 0 <= event.quantity <= MAX_QUANTITY:
        hint = " (a negative number written as an int32 varint?)" if event.quantity >= 2**31 else ""
        raise InvalidEvent("bad_value", f"quantity {event.quantity} is not in 0..{MAX_QUANTITY}{hint}")
