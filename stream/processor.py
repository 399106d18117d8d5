"""The worker's logic, free of Faust and Kafka: a batch of raw records in, state and refreshed recommendations out.

Per batch:
1. decode and validate each record; a bad one goes to the dead-letter sink with its reason; a good one that
   arrived off its session's partition (its producer partitions otherwise than murmur2) is set aside, to be
   forwarded there (step 7) instead of applied here, so a session has one partition and its offsets one order;
2. classify each event against the session's recently seen events (kept with their partition and offset):
   *new*, a *redelivery* of the same record (after a crash or rebalance), or a *duplicate* sent twice by a
   producer or forwarded twice across a crash (same event_id at another offset), which is dropped;
3. fold new events into per-session state;
4. apply new and redelivered events to the shared item/user aggregates (exactly once: the aggregate store
   skips offsets it has already applied);
5. one batched scorer call for every touched session, then one write of states, features and lists, fenced by
   record offset so that a worker which lost the partition in a rebalance cannot overwrite newer state;
6. the session table (changelog) last, once per session, at the partition of the session's records, as the
   same JSON the online copy holds;
7. the records set aside in step 1, sent to their session's partition and delivered.
Sessions are loaded from the table and from the online copy, whichever has seen the later record.
Every side effect is done when `process` returns, so the caller may then let offsets be committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streamrec.errors import InvalidEvent, ScorerError
from streamrec.events import ITEMLESS_TYPES, CanonicalEvent
from streamrec.features.session_store import MAX_SESSION_ITEMS, MAX_SESSION_QUERIES, Recommendations, SessionState
from streamrec.stream.aggregates import AggregateInput, AppliedBatch
from streamrec.stream.decode import decode_event
from streamrec.stream.partitioning import owner_partition

log = logging.getLogger(__name__)

FORWARD_LOG_EVERY_S = 10.0  # one summary line, not one per batch (the metric counts every record)
SEEN_PER_SESSION = 32  # producer retries resend within seconds, i.e. within a session's last few events


@dataclass(frozen=True)
class RawRecord:
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    timestamp_s: float | None = None  # the producer's timestamp, kept when the record is forwarded


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_future_skew_ms: int
    max_event_age_ms: int
    refresh_k: int


class StateTable(Protocol):
    """Per-session durable state, as SessionState JSON (a Faust table in the worker, a dict in unit tests)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, partition: int) -> None: ...


class DeadLetterSink(Protocol):
    async def send(self, record: RawRecord, reason: str, detail: str) -> None: ...


@dataclass(frozen=True)
class Forward:
    """A record to send on to its session's owner partition, keyed by the session."""

    record: RawRecord
    session_id: str
    partition: int


class Router(Protocol):
    """The events topic: how many partitions it has, and the way to a session's own partition."""

    def partitions(self) -> int: ...

    async def forward(self, records: Sequence[Forward]) -> None:
        """Send each record's original bytes to its partition, in order; return once the broker holds them all."""
        ...


@dataclass(frozen=True)
class Refresh:
    """A scorer's answer for a batch's sessions: each list best first, the model that made them, and each list as
    the scorer serialized it for a page view (`wire`, where it sent one: serving/prebuilt.py)."""

    lists: dict[str, list[tuple[str, float]]]
    model_version: str
    wire: dict[str, bytes] = field(default_factory=dict)


class Scorer(Protocol):
    """Batched top-k for (session_id, items, excluded items, id of the event that caused the refresh)."""

    async def score(self, sessions: Sequence[tuple[str, list[str], list[str], str]], k: int) -> Refresh: ...


class Aggregates(Protocol):
    async def apply(self, events: Sequence[AggregateInput]) -> AppliedBatch: ...


class StateStore(Protocol):
    """The online copy of session state: read before a batch, written (fenced by offset) after it."""

    async def read_states(self, session_ids: Sequence[str]) -> dict[str, SessionState]: ...

    async def write(
        self, states: dict[str, SessionState], recs: dict[str, Recommendations], aggregates: AppliedBatch
    ) -> None: ...


@dataclass
class BatchOutcome:
    processed: int = 0
    duplicates: int = 0
    redelivered: int = 0
    late: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    refreshed: int = 0
    refresh_failed: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    forwarded: int = 0  # sent on to their session's partition, to be applied there


@dataclass
class _Touched:
    """A session's working copy during one batch."""

    state: SessionState
    cause: CanonicalEvent | None = None
    cause_offset: int = -1
    changed: bool = False  # a new event changed the state: write the table


class SessionProcessor:
    def __init__(
        self,
        table: StateTable,
        dead_letters: DeadLetterSink,
        scorer: Scorer,
        aggregates: Aggregates,
        store: StateStore,
        limits: Limits,
        clock_ms: Callable[[], int] | None = None,
        pseudonym: Callable[[str], str] = lambda user_id: user_id,
        router: Router | None = None,
    ) -> None:
        self.pseudonym = pseudonym  # raw user ids never leave this process: see streamrec/privacy.py
        self.table = table
        self.dead_letters = dead_letters
        self.scorer = scorer
        self.aggregates = aggregates
        self.store = store
        self.limits = limits
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.router = router  # None: every record is applied where it arrived (one partition, or unit tests)
        self._forward_routes: Counter[str] = Counter()
        self._forward_logged_at = float("-inf")

    async def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        outcome = BatchOutcome()
        now = self.clock_ms()
        partitions = self.router.partitions() if self.router is not None else 0
        decoded: list[tuple[RawRecord, CanonicalEvent]] = []
        forwards: list[Forward] = []
        for record in records:
            event = await self._decode_or_dead_letter(record, now, outcome)
            if event is None:
                continue
            if partitions:  # routed by the decoded session id: a missing or different key does not matter
                owner = owner_partition(event.session_id, partitions)
                if owner != record.partition:
                    forwards.append(Forward(record, event.session_id, owner))
                    continue
            if event.user_id:
                event = dataclasses.replace(event, user_id=self.pseudonym(event.user_id))
            decoded.append((record, event))
        if decoded:
            await self._apply(decoded, now, outcome)
        if forwards:  # last: a batch retried after a Redis error has not sent them yet
            await self._forward(forwards, outcome)
        return outcome

    async def _apply(self, decoded: list[tuple[RawRecord, CanonicalEvent]], now: int, outcome: BatchOutcome) -> None:
        touched = await self._load(list(dict.fromkeys(event.session_id for _, event in decoded)))  # arrival order
        to_aggregate: list[AggregateInput] = []
        for record, event in decoded:
            session = touched[event.session_id]
            mark = f"{event.event_id}@{record.partition}:{record.offset}"
            verdict = _classify(session.state.seen, event.event_id, mark)
            if verdict == "duplicate":
                outcome.duplicates += 1
                continue
            session.cause, session.cause_offset = event, record.offset
            if verdict == "new":
                apply_event(session.state, event, now, record.partition, record.offset)
                session.state.seen = (session.state.seen + [mark])[-SEEN_PER_SESSION:]
                session.changed = True
                outcome.processed += 1
                outcome.by_type[event.type] += 1
            else:
                outcome.redelivered += 1
            if event.type in ITEMLESS_TYPES:  # a search: the aggregates count what was done with items
                continue
            to_aggregate.append(
                AggregateInput(
                    record.partition,
                    record.offset,
                    event.item_id,
                    event.type,
                    event.ts_ms,
                    event.category_id,
                    event.user_id,
                )
            )
        # A search makes its session's latest event, so it is refreshed like any other: the same items scored again
        # (a search adds none, so no empty item is ever scored), which keeps the stored list current for the
        # next page view (serving/recommender.py serves it only if caused by the latest event). A session that
        # has only searched has no items and is not refreshed (`_refresh`).
        affected = {sid: t for sid, t in touched.items() if t.cause is not None}
        if not affected:
            return
        # the aggregates and the refresh do not depend on each other: one round trip of wall time, not two
        applied, recs = await asyncio.gather(self.aggregates.apply(to_aggregate), self._refresh(affected, outcome))
        outcome.late = applied.late
        await self.store.write({sid: t.state for sid, t in affected.items()}, recs, applied)
        for sid, session in affected.items():
            if session.changed:  # as JSON bytes: one object per session for the garbage collector, not dozens
                self.table.put(sid, session.state.to_json_bytes(), session.state.partition)

    async def _forward(self, forwards: list[Forward], outcome: BatchOutcome) -> None:
        assert self.router is not None  # only a router's partition count sets records aside
        await self.router.forward(forwards)
        outcome.forwarded = len(forwards)
        self._forward_routes.update(f"{f.record.partition}->{f.partition}" for f in forwards)
        now = time.monotonic()
        if now - self._forward_logged_at >= FORWARD_LOG_EVERY_S:  # a producer with another partitioner: steady
            routes = self._forward_routes
            log.info(
                "forwarded %d records to their sessions' partitions since the last report (%s)",
                routes.total(),
                ", ".join(f"{route}: {n}" for route, n in sorted(routes.items())),
            )
            self._forward_routes, self._forward_logged_at = Counter(), now

    async def _decode_or_dead_letter(self, record: RawRecord, now: int, outcome: BatchOutcome) -> CanonicalEvent | None:
        lim = self.limits
        try:
            return decode_event(record.value, now, lim.max_event_bytes, lim.max_future_skew_ms, lim.max_event_age_ms)
        except InvalidEvent as bad:
            outcome.dead_letters[bad.reason] += 1
            await self.dead_letters.send(record, bad.reason, bad.detail)
            return None

    async def _load(self, session_ids: list[str]) -> dict[str, _Touched]:
        """Each session's newest known state: the table's, unless the online copy has seen a later record.

        The table can lag after a rebalance (its changelog is written asynchronously), and the online copy can
        be lost (a Redis restart without persistence); the newer of the two, by offset, is the truth.
        """
        online = await self.store.read_states(session_ids)
        out = {}
        for sid in session_ids:
            local = _from_table(self.table.get(sid))
            remote = online.get(sid)
            best = remote if remote is not None and (local is None or _newer(remote, local)) else local
            out[sid] = _Touched(best or SessionState())
        return out

    async def _refresh(self, touched: dict[str, _Touched], outcome: BatchOutcome) -> dict[str, Recommendations]:
        requests = [
            (sid, t.state.items, t.state.purchases, t.cause.event_id if t.cause else "")
            for sid, t in touched.items()
            if t.state.items
        ]
        if not requests:
            return {}
        try:
            refresh = await self.scorer.score(requests, self.limits.refresh_k)
        except ScorerError as exc:
            outcome.refresh_failed += len(requests)
            log.warning("refresh skipped for %d sessions: %s", len(requests), exc)
            return {}
        now = self.clock_ms()
        recs = {}
        version = refresh.model_version
        for sid, items in refresh.lists.items():
            session = touched.get(sid)
            if session is not None and session.cause is not None:
                cause = session.cause
                wire = Recommendations.encode_wire(refresh.wire.get(sid, b""))
                recs[sid] = Recommendations(
                    session.cause_offset, items, version, cause.event_id, cause.ts_ms, now, wire
                )
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "refreshed %s",
                        sid,
                        extra={
                            "event_id": cause.event_id,
                            "session_id": sid,
                            "model_version": version,
                            "items": len(items),
                        },
                    )
        outcome.refreshed += len(recs)
        return recs


def _newer(a: SessionState, b: SessionState) -> bool:
    """Whether `a` has seen a later record than `b`. Offsets of two partitions do not compare: a state written
    before sessions were routed to one partition, or before the topic grew, is judged by its update time."""
    return a.offset > b.offset if a.partition == b.partition else a.updated_ms > b.updated_ms


def _from_table(raw: bytes | None) -> SessionState | None:
    return SessionState.from_json(raw) if raw else None


def _classify(seen: list[str], event_id: str, mark: str) -> str:
    """'new', 'redelivery' (this very record was applied before) or 'duplicate' (same id, another record)."""
    prefix = event_id + "@"
    for entry in seen:
        if entry.startswith(prefix):
            return "redelivery" if entry == mark else "duplicate"
    return "new"


def apply_event(state: SessionState, event: CanonicalEvent, now_ms: int, partition: int = -1, offset: int = -1) -> None:
    """Fold one event, read at `partition`/`offset`, into a session's state (pure; the unit of the worker's logic)."""
    state.partition, state.offset = partition, offset
    if event.type in ("view", "click"):
        state.items = (state.items + [event.item_id])[-MAX_SESSION_ITEMS:]
        state.clicks += 1
    elif event.type == "add_to_cart":
        state.carts = (state.carts + [event.item_id])[-MAX_SESSION_ITEMS:]
        state.cart_adds += 1
    elif event.type == "purchase":
        state.purchases = (state.purchases + [event.item_id])[-MAX_SESSION_ITEMS:]
        state.carts = [item for item in state.carts if item != event.item_id]
        state.purchase_count += 1
    elif event.type == "search":
        state.queries = (state.queries + [event.query])[-MAX_SESSION_QUERIES:]
    if event.user_id:
        state.user_id = event.user_id
    if event.category_id:
        state.last_category = event.category_id
    state.last_event_id = event.event_id
    state.last_ts_ms = max(state.last_ts_ms, event.ts_ms)
    state.updated_ms = now_ms
    state.events += 1
