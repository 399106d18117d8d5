"""Hostile records mixed into good ones through the worker's batch logic (no broker): every record is accounted for
exactly once, each bad one reaches the dead-letter sink with its original bytes and reason, and a stream of bad
records costs no memory that grows with it."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.errors import InvalidEvent
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import Recommendations, SessionState
from streamrec.stream.aggregates import AggregateInput, AppliedBatch
from streamrec.stream.decode import decode_event
from streamrec.stream.processor import Limits, RawRecord, Refresh, SessionProcessor
from tests.hostile.records import NOW, good_event, messages, string_field_bytes

LIMITS = Limits(max_event_bytes=16_384, max_future_skew_ms=600_000, max_event_age_ms=400 * 86_400_000, refresh_k=5)


class DictTable(dict[str, Any]):
    def put(self, key: str, value: Any, partition: int) -> None:
        self[key] = value


class RecordingDeadLetters:
    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.sent: list[tuple[bytes | None, str]] = []
        self.count = 0

    async def send(self, record: RawRecord, reason: str, detail: str) -> None:
        assert reason and detail  # a clear error travels with the record
        self.count += 1
        if self.keep:
            self.sent.append((record.value, reason))


class FirstItemScorer:
    async def score(self, sessions: Sequence[tuple[Any, ...]], k: int) -> Refresh:
        return Refresh({sid: [(items[0], 1.0)] for sid, items, *_ in sessions}, "v-test")


class PassAggregates:
    async def apply(self, events: Sequence[AggregateInput]) -> AppliedBatch:
        return AppliedBatch(applied=len(events))


class NullStore:
    async def read_states(self, session_ids: Sequence[str]) -> dict[str, SessionState]:
        return {}

    async def write(
        self, states: dict[str, SessionState], recs: dict[str, Recommendations], aggregates: AppliedBatch
    ) -> None:
        return None


def make(dead_letters: RecordingDeadLetters) -> SessionProcessor:
    return SessionProcessor(
        DictTable(), dead_letters, FirstItemScorer(), PassAggregates(), NullStore(), LIMITS, clock_ms=lambda: NOW
    )


def reason_of(value: bytes | None) -> str | None:
    lim = LIMITS
    try:
        decode_event(value, NOW, lim.max_event_bytes, lim.max_future_skew_ms, lim.max_event_age_ms)
    except InvalidEvent as bad:
        return bad.reason
    return None


def good_record(n: int) -> bytes:
    return CanonicalEvent(f"g{n}", "click", f"s{n % 3}", "", f"i{n % 7}", NOW - 1000 + n).to_bytes()


def hostile_values() -> st.SearchStrategy[bytes | None]:
    not_utf8 = st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"])
    return st.one_of(
        st.none(),
        st.binary(max_size=256),
        messages().map(lambda m: m.SerializeToString()),
        not_utf8.map(lambda bad: good_event().SerializeToString() + string_field_bytes(3, bad)),
        st.integers(16_385, 40_000).map(lambda n: good_event(category_id="c" * n).SerializeToString()),
        st.floats(allow_nan=True).map(lambda p: good_event(price=p).SerializeToString()),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 50).map(good_record), hostile_values()), min_size=1, max_size=40))
def test_every_record_is_counted_once_and_bad_ones_keep_bytes_and_reason(values: list[bytes | None]) -> None:
    records = [RawRecord(b"k", value, partition=0, offset=n) for n, value in enumerate(values)]
    dead_letters = RecordingDeadLetters()
    outcome = asyncio.run(make(dead_letters).process(records))

    expected = [(value, reason) for value in values if (reason := reason_of(value)) is not None]
    assert dead_letters.sent == expected  # original bytes, in order, each with its reason
    assert outcome.dead_letters == Counter(reason for _, reason in expected)
    assert outcome.processed + outcome.duplicates + outcome.redelivered + len(expected) == len(values)


def test_a_long_stream_of_hostile_records_costs_no_growing_memory() -> None:
    """1,000 hostile records a batch, 20 batches; memory after the 5th and the 20th batch is the same."""
    corpus = [
        b"\xff\xfe not protobuf",
        good_event().SerializeToString() + string_field_bytes(5, b"\xff"),
        good_event(session_id="s" * 10_000).SerializeToString(),
        good_event(price=float("nan")).SerializeToString(),
        b"x" * 20_000,
        good_event(type=99).SerializeToString(),
        None,
    ]
    batch = [RawRecord(b"k", corpus[n % len(corpus)], offset=n) for n in range(1000)]
    dead_letters = RecordingDeadLetters(keep=False)
    processor = make(dead_letters)

    async def run(batches: int) -> None:
        for _ in range(batches):
            outcome = await processor.process(batch)
            assert sum(outcome.dead_letters.values()) == len(batch)

    tracemalloc.start()
    try:
        asyncio.run(run(5))
        gc.collect()
        after_5 = tracemalloc.get_traced_memory()[0]
        asyncio.run(run(15))
        gc.collect()
        after_20 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert dead_letters.count == 20 * len(batch)
    assert after_20 - after_5 < 64 * 1024, f"{after_20 - after_5} bytes more after 15 more batches"
