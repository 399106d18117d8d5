"""Canonical events: the one in-memory record every loader, generator and producer speaks, and its protobuf form."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamrec.errors import InvalidEvent
from streamrec.protos import events_pb2

# "search" (a query typed in the search box) has no item; training keeps the other four (training/sequences.py)
EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase", "search")
ITEMLESS_TYPES = frozenset({"search"})  # the only types whose item_id may be empty
_TO_PROTO = {
    "view": events_pb2.EVENT_TYPE_VIEW,
    "click": events_pb2.EVENT_TYPE_CLICK,
    "add_to_cart": events_pb2.EVENT_TYPE_ADD_TO_CART,
    "purchase": events_pb2.EVENT_TYPE_PURCHASE,
    "search": events_pb2.EVENT_TYPE_SEARCH,
}
_FROM_PROTO = {v: k for k, v in _TO_PROTO.items()}

# Columns of the canonical Parquet layout, in order (a search's `query` is not one: training has no use for it).
COLUMNS: tuple[str, ...] = (
    "event_id",
    "type",
    "session_id",
    "user_id",
    "item_id",
    "category_id",
    "price",
    "quantity",
    "ts_ms",
)


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    event_id: str
    type: str  # one of EVENT_TYPES
    session_id: str
    user_id: str  # "" for anonymous sessions
    item_id: str
    ts_ms: int
    category_id: str = ""
    price: float | None = None
    quantity: int = 1
    query: str = ""  # the query of a search event; empty for the other types

    def to_proto(self) -> events_pb2.Event:
        if self.type not in _TO_PROTO:
            raise InvalidEvent("unknown_type", f"event type {self.type!r} is not one of {EVENT_TYPES}")
        event = events_pb2.Event(
            event_id=self.event_id,
            type=_TO_PROTO[self.type],
            session_id=self.session_id,
            user_id=self.user_id,
            item_id=self.item_id,
            ts_ms=int(self.ts_ms),
            quantity=int(self.quantity),
        )
        if self.category_id:
            event.category_id = self.category_id
        if self.price is not None and not math.isnan(self.price):
            event.price = float(self.price)
        if self.query:
            event.query = self.query
        return event

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString()

    @classmethod
    def from_proto(cls, event: events_pb2.Event) -> CanonicalEvent:
        if event.type not in _FROM_PROTO:
            raise InvalidEvent("unknown_type", f"event type number {event.type} is not a known EventType")
        return cls(
            event_id=event.event_id,
            type=_FROM_PROTO[event.type],
            session_id=event.session_id,
            user_id=event.user_id,
            item_id=event.item_id,
            ts_ms=event.ts_ms,
            category_id=event.category_id if event.HasField("category_id") else "",
            price=event.price if event.HasField("price") else None,
            quantity=event.quantity if event.HasField("quantity") else 1,
            query=event.query,
        )

    def as_row(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in COLUMNS}
