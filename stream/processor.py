"""The worker's logic, free of Faust and Kafka: a batch of raw records in, state and refreshed recommendations out.

Per batch: decode and validate each record (bad ones to the dead-letter sink with a reason), drop duplicates by
event_id, fold events into per-session state, then for every touched session ask the scorer once (one batched
call) for a fresh top-k and write states and lists to Redis in one pipeline. Side effects finish before the
method returns, so the caller may commit offsets afterwards.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from features.session_store import MAX_SESSION_ITEMS, Recommendations, SessionState
from stream.decode import decode_event
from streamrec.errors import InvalidEvent, ScorerError
from streamrec.events import CanonicalEvent

log = logging.getLogger(__name__)

SEEN_EVENT_IDS = 64  # per session; duplicates arrive close together on the session's partition


@dataclass(frozen=True)
class RawRecord:
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_future_skew_ms: int
    max_event_age_ms: int
    refresh_k: int


class StateTable(Protocol):
    """Per-session durable state (a Faust table in the worker, a dict-backed fake in unit tests)."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any, partition: int) -> None: ...


class DeadLetterSink(Protocol):
    async def send(self, record: RawRecord, reason: str, detail: str) -> None: ...


class Scorer(Protocol):
    async def score(self, sessions: Sequence[tuple[str, list[str], list[str]]], k: int) -> tuple[
        dict[str, list[tuple[str, float]]], str
    ]: ...


class StateWriter(Protocol):
    async def write(self, states: dict[str, SessionState], recs: dict[str, Recommendations]) -> None: ...


@dataclass
class BatchOutcome:
    processed: int = 0
    duplicates: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    refreshed: int = 0
    refresh_failed: int = 0
    by_type: Counter[str] = field(default_factory=Counter)


class SessionProcessor:
    def __init__(
        self,
        table: StateTable,
        dead_letters: DeadLetterSink,
        scorer: Scorer,
        writer: StateWriter,
        limits: Limits,
        clock_ms: Any = None,
    ) -> None:
        self.table = table
        self.dead_letters = dead_letters
        self.scorer = scorer
        self.writer = writer
        self.limits = limits
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    async def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        outcome = BatchOutcome()
        now = self.clock_ms()
        touched: dict[str, SessionState] = {}
        causes: dict[str, CanonicalEvent] = {}
        for record in records:
            event = await self._decode_or_dead_letter(record, now, outcome)
            if event is None:
                continue
            state = touched.get(event.session_id) or self._load(event.session_id)
            if event.event_id in self._seen(event.session_id):
                outcome.duplicates += 1
                continue
            apply_event(state, event, now)
            self._remember(event.session_id, state, event.event_id, record.partition)
            touched[event.session_id] = state
            causes[event.session_id] = event
            outcome.processed += 1
            outcome.by_type[event.type] += 1
        if touched:
            recs = await self._refresh(touched, causes, outcome)
            await self.writer.write(touched, recs)
        return outcome

    async def _decode_or_dead_letter(self, record: RawRecord, now: int, outcome: BatchOutcome) -> CanonicalEvent | None:
        lim = self.limits
        try:
            return decode_event(record.value, now, lim.max_event_bytes, lim.max_future_skew_ms, lim.max_event_age_ms)
        except InvalidEvent as bad:
            outcome.dead_letters[bad.reason] += 1
            await self.dead_letters.send(record, bad.reason, bad.detail)
            return None

    def _load(self, session_id: str) -> SessionState:
        raw = self.table.get(session_id)
        if not raw:
            return SessionState()
        return SessionState(**{k: v for k, v in raw["state"].items() if k in SessionState.__dataclass_fields__})

    def _seen(self, session_id: str) -> list[str]:
        raw = self.table.get(session_id)
        return list(raw["seen"]) if raw else []

    def _remember(self, session_id: str, state: SessionState, event_id: str, partition: int) -> None:
        seen = (self._seen(session_id) + [event_id])[-SEEN_EVENT_IDS:]
        self.table.put(session_id, {"state": _state_dict(state), "seen": seen}, partition)

    async def _refresh(
        self, touched: dict[str, SessionState], causes: dict[str, CanonicalEvent], outcome: BatchOutcome
    ) -> dict[str, Recommendations]:
        requests = [(sid, st.items, st.purchases) for sid, st in touched.items() if st.items]
        try:
            lists, version = await self.scorer.score(requests, self.limits.refresh_k)
        except ScorerError as exc:
            outcome.refresh_failed += len(requests)
            log.warning("refresh skipped for %d sessions: %s", len(requests), exc)
            return {}
        now = self.clock_ms()
        recs = {
            sid: Recommendations(items, version, causes[sid].event_id, causes[sid].ts_ms, now)
            for sid, items in lists.items()
            if sid in causes
        }
        outcome.refreshed += len(recs)
        return recs


def apply_event(state: SessionState, event: CanonicalEvent, now_ms: int) -> None:
    """Fold one event into a session's state (pure; the unit of the worker's logic)."""
    if event.type in ("view", "click"):
        state.items = (state.items + [event.item_id])[-MAX_SESSION_ITEMS:]
    elif event.type == "add_to_cart":
        state.carts = (state.carts + [event.item_id])[-MAX_SESSION_ITEMS:]
    elif event.type == "purchase":
        state.purchases = (state.purchases + [event.item_id])[-MAX_SESSION_ITEMS:]
        state.carts = [item for item in state.carts if item != event.item_id]
    if event.user_id:
        state.user_id = event.user_id
    state.last_event_id = event.event_id
    state.last_ts_ms = max(state.last_ts_ms, event.ts_ms)
    state.updated_ms = now_ms
    state.events += 1


def _state_dict(state: SessionState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in SessionState.__dataclass_fields__}
