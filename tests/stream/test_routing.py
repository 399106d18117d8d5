"""A session's events are applied on its own partition (murmur2 of its id), whatever partition they arrive on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import pytest
import redis
from aiokafka.partitioner import DefaultPartitioner

from streamrec.events import CanonicalEvent
from streamrec.features.session_store import PUT_IF_NEWER, SessionState, recs_key, session_key
from streamrec.stream.partitioning import murmur2, owner_partition
from streamrec.stream.processor import Forward, RawRecord, SessionProcessor
from tests.stream.test_processor import NOW, CountingAggregates, DictTable, MemoryStore, make

PARTITIONS = 4


class RecordingRouter:
    """The events topic in memory: what was forwarded, in order."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.count = partitions
        self.sent: list[Forward] = []

    def partitions(self) -> int:
        return self.count

    async def forward(self, records: Sequence[Forward]) -> None:
        self.sent.extend(records)


def routed() -> tuple[SessionProcessor, RecordingRouter, MemoryStore]:
    processor, _, _, store = make()
    router = RecordingRouter()
    processor.router = router
    return processor, router, store


def table_of(processor: SessionProcessor) -> DictTable:
    assert isinstance(processor.table, DictTable)
    return processor.table


def event(sid: str, n: int, item: str) -> CanonicalEvent:
    return CanonicalEvent(f"{sid}-{n}", "click", sid, "", item, NOW - 10_000 + n)


def record(e: CanonicalEvent, partition: int, offset: int, key: bytes | None = b"") -> RawRecord:
    return RawRecord(e.session_id.encode() if key == b"" else key, e.to_bytes(), partition, offset, 1_800_000.5)


def elsewhere(sid: str) -> int:
    return (owner_partition(sid, PARTITIONS) + 1) % PARTITIONS


def run(processor: SessionProcessor, records: list[RawRecord]):  # type: ignore[no-untyped-def]
    return asyncio.run(processor.process(records))


# Kafka's own vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2)
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_owner_partition_is_the_partition_the_workers_own_producer_picks() -> None:
    """aiokafka (Faust's client) partitions keyed records like the Java client: the same owner for every key."""
    partitioner = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    for n in range(500):
        sid = f"s-{n}-{os.urandom(n % 13).hex()}"
        assert owner_partition(sid, PARTITIONS) == partitioner(sid.encode(), partitions, partitions)
    assert owner_partition("21", 7) == (-973932308 & 0x7FFFFFFF) % 7


def test_a_record_on_another_partition_is_forwarded_not_applied() -> None:
    processor, router, store = routed()
    e = event("a", 0, "x0")
    raw = record(e, elsewhere("a"), 17)
    outcome = run(processor, [raw])
    assert outcome.forwarded == 1 and outcome.processed == 0 and outcome.refreshed == 0
    assert router.sent == [Forward(raw, "a", owner_partition("a", PARTITIONS))]  # original bytes and timestamp
    assert store.states == {} and store.writes == 0 and processor.table.get("a") is None
    aggregates: CountingAggregates = processor.aggregates  # type: ignore[assignment]
    assert aggregates.applied == {}  # counted at the owner only, once


def test_a_record_on_its_sessions_partition_is_applied_and_the_forwarded_copy_joins_it() -> None:
    processor, router, store = routed()
    owner = owner_partition("a", PARTITIONS)
    first, second = event("a", 0, "x0"), event("a", 1, "x1")
    run(processor, [record(first, owner, 5), record(second, elsewhere("a"), 9)])
    assert router.sent[0].record.value == second.to_bytes() and store.states["a"].items == ["x0"]
    # the forwarded copy arrives at the owner with an offset of the owner's partition
    outcome = run(processor, [record(second, owner, 6)])
    assert outcome.processed == 1 and outcome.forwarded == 0
    state = store.states["a"]
    assert state.items == ["x0", "x1"] and (state.partition, state.offset) == (owner, 6)
    assert store.recs["a"].event_id == "a-1"
    assert SessionState.from_json(table_of(processor)["a"]).items == ["x0", "x1"]
    assert table_of(processor).partitions["a"] == owner


def test_a_record_forwarded_twice_is_applied_once() -> None:
    """A crash after forwarding and before the commit forwards again: the second copy is a duplicate."""
    processor, _, store = routed()
    owner = owner_partition("a", PARTITIONS)
    e = event("a", 0, "x0")
    outcome = run(processor, [record(e, owner, 3), record(e, owner, 4)])
    outcome2 = run(processor, [record(e, owner, 8)])
    assert outcome.processed == 1 and outcome.duplicates == 1 and outcome2.duplicates == 1
    assert store.states["a"].items == ["x0"] and store.states["a"].events == 1
    aggregates: CountingAggregates = processor.aggregates  # type: ignore[assignment]
    assert sorted(aggregates.applied) == [(owner, 3)]


def test_routing_is_by_the_decoded_session_not_the_key() -> None:
    processor, router, store = routed()
    a, c = event("a", 0, "x0"), event("c", 0, "y0")
    owner_a, owner_c = owner_partition("a", PARTITIONS), owner_partition("c", PARTITIONS)
    assert owner_a != owner_c
    records = [record(a, owner_a, 1, key=None), record(c, owner_a, 2, key=b"a")]  # no key; another session's key
    outcome = run(processor, records)
    assert store.states["a"].items == ["x0"] and "c" not in store.states
    assert outcome.forwarded == 1 and router.sent == [Forward(records[1], "c", owner_c)]


def test_forwarded_records_keep_their_order_and_dead_letters_stay_here() -> None:
    processor, router, _ = routed()
    away = elsewhere("a")
    bad = RawRecord(b"a", b"\x00garbage", away, 0)
    records = [bad] + [record(event("a", n, f"x{n}"), away, n + 1) for n in range(5)]
    outcome = run(processor, records)
    assert outcome.dead_letters == {"undecodable": 1} and outcome.forwarded == 5
    assert [f.record.offset for f in router.sent] == [1, 2, 3, 4, 5]


def test_nothing_is_forwarded_when_the_batch_fails_before_its_end() -> None:
    """Forwarding is the batch's last step: a batch retried after a Redis error does not forward twice."""
    processor, router, store = routed()

    class Down(MemoryStore):
        async def write(self, *args: object) -> None:
            raise ConnectionError("redis down")

    processor.store = Down()
    a = event("a", 0, "x0")
    records = [record(a, owner_partition("a", PARTITIONS), 0), record(event("a", 1, "x1"), elsewhere("a"), 0)]
    with pytest.raises(ConnectionError):
        run(processor, records)
    assert router.sent == []
    processor.store = store
    assert run(processor, records).forwarded == 1 and len(router.sent) == 1


def test_without_a_router_every_record_is_applied_where_it_arrived() -> None:
    processor, _, _, store = make()
    run(processor, [record(event("a", 0, "x0"), elsewhere("a"), 0)])
    assert store.states["a"].items == ["x0"]


def test_a_state_from_another_partition_is_judged_by_its_update_time() -> None:
    """A session applied on another partition before routing: its offsets say nothing against the owner's."""
    processor, _, store = routed()
    owner = owner_partition("a", PARTITIONS)
    legacy = SessionState(offset=1_000_000, partition=elsewhere("a"), updated_ms=NOW - 60_000, items=["old"])
    store.states["a"] = legacy
    current = SessionState(offset=10, partition=owner, updated_ms=NOW - 1_000, items=["x0"], events=1)
    table_of(processor)["a"] = current.to_json_bytes()
    run(processor, [record(event("a", 1, "x1"), owner, 11)])
    assert SessionState.from_json(table_of(processor)["a"]).items == ["x0", "x1"]


def test_put_if_newer_compares_offsets_of_one_partition_only(redis_url: str, project: str) -> None:
    client = redis.Redis.from_url(redis_url)
    put = client.register_script(PUT_IF_NEWER)
    key = session_key(project, "a")

    def state(partition: int, offset: int) -> bytes:
        return SessionState(offset=offset, partition=partition, items=[f"{partition}:{offset}"]).to_json_bytes()

    assert put(keys=[key], args=[state(1, 900), 900, 60]) == 1
    assert put(keys=[key], args=[state(1, 800), 800, 60]) == 0  # a stale writer of the same partition is fenced
    assert put(keys=[key], args=[state(2, 5), 5, 60]) == 1  # another partition's offsets do not compare
    assert put(keys=[key], args=[state(2, 6), 6, 60]) == 1 and put(keys=[key], args=[state(2, 4), 4, 60]) == 0
    assert SessionState.from_json(client.get(key)).items == ["2:6"]  # type: ignore[arg-type]
    recs = recs_key(project, "a")  # lists carry no partition: the offset alone decides, as before
    assert put(keys=[recs], args=['{"offset":9,"items":[]}', 9, 60]) == 1
    assert put(keys=[recs], args=['{"offset":8,"items":[]}', 8, 60]) == 0
    client.close()
