"""The worker's batch logic without a broker: state, dedupe, dead letters, one batched refresh per batch."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

from streamrec.errors import ScorerError
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import MAX_SESSION_ITEMS, Recommendations, SessionState
from streamrec.stream.aggregates import AggregateInput, AppliedBatch
from streamrec.stream.processor import Limits, RawRecord, Refresh, SessionProcessor

NOW = 1_800_000_000_000
LIMITS = Limits(max_event_bytes=4096, max_future_skew_ms=60_000, max_event_age_ms=86_400_000, refresh_k=5)


class DictTable(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[str, int] = {}

    def put(self, key: str, value: Any, partition: int) -> None:
        self[key] = value
        self.partitions[key] = partition


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, str]] = []

    async def send(self, record: RawRecord, reason: str, detail: str) -> None:
        self.sent.append((record.value, reason))


class EchoScorer:
    """Recommends the session's last item reversed, so tests can tell which history was scored."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def score(self, sessions: Sequence[tuple[str, list[str], list[str], str]], k: int) -> Refresh:
        self.calls.append([sid for sid, _, _, _ in sessions])
        self.causes = [cause for _, _, _, cause in sessions]
        if self.fail:
            raise ScorerError("scorer down")
        lists = {sid: [(items[-1][::-1], 1.0)] for sid, items, _, _ in sessions}
        return Refresh(lists, "v-test", {sid: f"wire-{sid}".encode() for sid in lists})


class CountingAggregates:
    """Stands in for the Redis script: applies each (partition, offset) once, like the real one."""

    def __init__(self) -> None:
        self.applied: dict[tuple[int, int], AggregateInput] = {}
        self.redelivered = 0

    async def apply(self, events: Sequence[AggregateInput]) -> AppliedBatch:
        for e in events:
            if (e.partition, e.offset) in self.applied:
                self.redelivered += 1
            self.applied.setdefault((e.partition, e.offset), e)
        return AppliedBatch(applied=len(events))


class MemoryStore:
    """The online copy in memory, fenced by offset like RedisStateStore's PUT_IF_NEWER."""

    def __init__(self) -> None:
        self.states: dict[str, SessionState] = {}
        self.recs: dict[str, Recommendations] = {}
        self.writes = 0

    async def read_states(self, session_ids: Sequence[str]) -> dict[str, SessionState]:
        return {sid: copy.deepcopy(self.states[sid]) for sid in session_ids if sid in self.states}

    async def write(
        self, states: dict[str, SessionState], recs: dict[str, Recommendations], aggregates: AppliedBatch
    ) -> None:
        self.writes += 1
        for sid, state in states.items():
            if sid not in self.states or self.states[sid].offset <= state.offset:
                self.states[sid] = copy.deepcopy(state)
        for sid, rec in recs.items():
            if sid not in self.recs or self.recs[sid].offset <= rec.offset:
                self.recs[sid] = rec


def click(sid: str, n: int, item: str, kind: str = "click", offset: int | None = None) -> RawRecord:
    event = CanonicalEvent(f"{sid}-{n}", kind, sid, "", item, NOW - 10_000 + n)
    return RawRecord(sid.encode(), event.to_bytes(), partition=ord(sid[0]) % 4, offset=n if offset is None else offset)


def make(scorer: EchoScorer | None = None) -> tuple[SessionProcessor, DictTable, RecordingDeadLetters, MemoryStore]:
    table, dlq, writer = DictTable(), RecordingDeadLetters(), MemoryStore()
    processor = SessionProcessor(
        table, dlq, scorer or EchoScorer(), CountingAggregates(), writer, LIMITS, clock_ms=lambda: NOW
    )
    return processor, table, dlq, writer


def run(processor: SessionProcessor, records: list[RawRecord]) -> Any:
    return asyncio.run(processor.process(records))


def test_state_keeps_order_and_one_refresh_per_batch() -> None:
    scorer = EchoScorer()
    processor, table, _, writer = make(scorer)
    outcome = run(processor, [click("a", 0, "x1"), click("b", 0, "y1"), click("a", 1, "x2")])
    assert outcome.processed == 3
    assert writer.states["a"].items == ["x1", "x2"]
    assert writer.states["b"].items == ["y1"]
    assert scorer.calls == [["a", "b"]]  # one batched call for both sessions
    assert scorer.causes == ["a-1", "b-0"]  # each refresh names the event that caused it
    assert writer.writes == 1
    assert writer.recs["a"].items == [("2x", 1.0)] and writer.recs["a"].event_id == "a-1"
    assert writer.recs["a"].entries() == b"wire-a"  # the scorer's serialized answer is stored with the list
    assert table.partitions["a"] == ord("a") % 4 and writer.states["a"].offset == 1


def test_producer_duplicates_change_nothing_within_and_across_batches() -> None:
    processor, _, _, writer = make()
    # the same event_id sent twice by a producer arrives at two offsets
    run(processor, [click("a", 0, "x1", offset=0), click("a", 0, "x1", offset=1)])
    outcome = run(processor, [click("a", 0, "x1", offset=2), click("a", 1, "x2", offset=3)])
    assert outcome.duplicates == 1
    assert writer.states["a"].items == ["x1", "x2"]
    assert writer.states["a"].events == 2
    aggregates: CountingAggregates = processor.aggregates  # type: ignore[assignment]
    assert sorted(aggregates.applied) == [(ord("a") % 4, 0), (ord("a") % 4, 3)]


def test_redelivery_after_a_crash_reaches_aggregates_but_not_state_twice() -> None:
    processor, _, _, writer = make()
    records = [click("a", n, f"x{n}") for n in range(4)]
    run(processor, records)
    # restart from an older committed offset: the table already holds these events
    outcome = run(processor, records[2:] + [click("a", 4, "x4")])
    assert outcome.redelivered == 2 and outcome.processed == 1 and outcome.duplicates == 0
    assert writer.states["a"].items == ["x0", "x1", "x2", "x3", "x4"]
    aggregates: CountingAggregates = processor.aggregates  # type: ignore[assignment]
    assert aggregates.redelivered == 2 and len(aggregates.applied) == 5


def test_bad_records_are_dead_lettered_and_good_ones_go_on() -> None:
    processor, _, dlq, writer = make()
    bad = RawRecord(b"a", b"\x00garbage\xff", 0, 5)
    outcome = run(processor, [bad, click("a", 0, "x1")])
    assert dlq.sent == [(b"\x00garbage\xff", "undecodable")]
    assert outcome.dead_letters == {"undecodable": 1}
    assert writer.states["a"].items == ["x1"]


def test_state_is_bounded_and_purchases_leave_the_cart() -> None:
    processor, _, _, writer = make()
    records = [click("a", n, f"x{n}") for n in range(MAX_SESSION_ITEMS + 10)]
    records += [click("a", 100, "x3", "add_to_cart"), click("a", 101, "x3", "purchase")]
    run(processor, records)
    state = writer.states["a"]
    assert len(state.items) == MAX_SESSION_ITEMS and state.items[-1] == f"x{MAX_SESSION_ITEMS + 9}"
    assert state.carts == [] and state.purchases == ["x3"]


def test_scorer_failure_still_writes_state() -> None:
    processor, _, _, writer = make(EchoScorer(fail=True))
    outcome = run(processor, [click("a", 0, "x1")])
    assert outcome.refresh_failed == 1
    assert writer.states["a"].items == ["x1"] and writer.recs == {}


def test_a_stale_worker_cannot_overwrite_newer_state() -> None:
    """Two workers briefly process one partition during a rebalance; the online copy keeps the newest state."""
    shared = MemoryStore()

    class ReadBeforeTheNewOwnerWrote(MemoryStore):
        async def read_states(self, session_ids: Sequence[str]) -> dict[str, SessionState]:
            return {}  # the old owner loaded its batch before the new owner's write

        async def write(self, *args: Any) -> None:
            await shared.write(*args)

    old_owner, _, _, _ = make()
    new_owner, _, _, _ = make()
    new_owner.store, old_owner.store = shared, ReadBeforeTheNewOwnerWrote()
    records = [click("a", n, f"x{n}") for n in range(3)]
    run(new_owner, records)  # the new owner got there first ...
    run(old_owner, records[:2])  # ... and the old owner finishes a stale batch late
    assert shared.states["a"].items == ["x0", "x1", "x2"] and shared.states["a"].events == 3
    assert shared.recs["a"].event_id == "a-2"


def test_a_lagging_table_is_overruled_by_the_online_copy() -> None:
    processor, table, _, store = make()
    run(processor, [click("a", 0, "x0"), click("a", 1, "x1")])
    table.clear()  # the changelog had not caught up when this worker took the partition over
    run(processor, [click("a", 2, "x2")])
    assert store.states["a"].items == ["x0", "x1", "x2"]
    assert SessionState.from_json(table["a"]).items == ["x0", "x1", "x2"]
