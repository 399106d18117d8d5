"""Producers with either of librdkafka's keyed partitioners: every session gets all of its events, in order.

`consistent_random` (kcat's default, CRC32 of the key) puts many sessions on another partition than murmur2,
which the worker owns them by; it forwards those records there. `murmur2_random` (the Java client's choice)
puts every session on its own partition, and nothing is forwarded. The partitions hold very different numbers
of records, so a session whose events arrive on two of them (one producer of each kind) sees offsets far apart:
the case where, before forwarding, an offset fence comparing the two partitions' offsets dropped events.
"""

from __future__ import annotations

import functools
import time
import uuid
import zlib
from collections.abc import Callable
from typing import cast

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamrec.events import CanonicalEvent
from streamrec.features.session_store import Recommendations, SessionState, recs_key, session_key
from streamrec.protos import events_pb2
from streamrec.stream.partitioning import owner_partition
from streamrec.training.synthetic import SyntheticConfig, make_catalogue
from tests.integration.harness import EVENTS_TOPIC, Services

pytestmark = pytest.mark.integration
PARTITIONS = 4  # the `services` fixture's events topic
EVENTS_PER_SESSION = 6


class KeyedProducer:
    """One confluent-kafka producer with `partitioner`; remembers the partition each session's records went to."""

    def __init__(self, bootstrap: str, partitioner: str) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": partitioner,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
            }
        )
        self.placed: dict[str, set[int]] = {}
        self.failed: list[str] = []
        self.sent: list[CanonicalEvent] = []

    def _delivered(self, err: object, msg: object) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            self.placed.setdefault(msg.key().decode(), set()).add(msg.partition())  # type: ignore[attr-defined]

    def send(self, events: list[CanonicalEvent]) -> None:
        for event in events:
            self.producer.produce(
                EVENTS_TOPIC, key=event.session_id.encode(), value=event.to_bytes(), on_delivery=self._delivered
            )
            self.producer.poll(0)
        self.sent += events
        assert self.producer.flush(30) == 0 and not self.failed, self.failed


def crc32_partition(session_id: str) -> int:
    """Where librdkafka's consistent_random puts a keyed record."""
    return zlib.crc32(session_id.encode()) % PARTITIONS


def owned_by(partition: int) -> Callable[[str], bool]:
    return lambda sid: owner_partition(sid, PARTITIONS) == partition


def session_ids(prefix: str, n: int, where: Callable[[str], bool]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        sid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if where(sid):
            out.append(sid)
    return out


def events_of(sids: list[str], items: list[str], length: int = EVENTS_PER_SESSION) -> dict[str, list[CanonicalEvent]]:
    now = int(time.time() * 1000)
    return {
        sid: [
            CanonicalEvent(
                f"{sid}-{n}", "click" if n % 2 else "view", sid, "", items[(s * 7 + n * 3) % 500], now - 1000 + n
            )
            for n in range(length)
        ]
        for s, sid in enumerate(sids)
    }


def interleaved(sessions: dict[str, list[CanonicalEvent]]) -> list[CanonicalEvent]:
    """Sessions' events interleaved as in a real stream, each session's in its own order."""
    length = max(len(events) for events in sessions.values())
    return [events[n] for n in range(length) for events in sessions.values() if n < len(events)]


def forwarded_event_ids(bootstrap: str) -> list[str]:
    """Event ids of the records the worker forwarded (they carry `forwarded_from`), each on its owner partition."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    topic_partitions = [TopicPartition(EVENTS_TOPIC, p, 0) for p in range(PARTITIONS)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in topic_partitions}
    consumer.assign(topic_partitions)
    positions = dict.fromkeys(range(PARTITIONS), 0)
    ids = []
    deadline = time.monotonic() + 30
    while any(positions[p] < ends[p] for p in positions) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        partition, offset = cast(int, message.partition()), cast(int, message.offset())
        positions[partition] = offset + 1
        if "forwarded_from" in dict(message.headers() or []):
            event = events_pb2.Event()
            event.ParseFromString(cast(bytes, message.value()))
            assert partition == owner_partition(event.session_id, PARTITIONS)
            assert message.key() == event.session_id.encode()
            ids.append(event.event_id)
    consumer.close()
    return ids


def wait_for_sessions(services: Services, expected: dict[str, int], timeout_s: float) -> dict[str, SessionState]:
    """Each session's state once it counts at least its expected events (or what there is at the deadline)."""
    client = services.client()
    keys = [session_key(services.project, sid) for sid in expected]
    deadline = time.monotonic() + timeout_s
    states: dict[str, SessionState] = {}
    while time.monotonic() < deadline:
        values = cast(list[bytes | None], client.mget(keys))
        states = {sid: SessionState.from_json(raw) for sid, raw in zip(expected, values, strict=True) if raw}
        if all(sid in states and states[sid].events >= n for sid, n in expected.items()):
            break
        time.sleep(0.05)
    client.close()
    return states


def test_both_partitioners_reach_every_session_in_order(services: Services) -> None:
    items = make_catalogue(SyntheticConfig()).item_ids
    owner = functools.partial(owner_partition, partitions=PARTITIONS)
    crc = KeyedProducer(services.kafka, "consistent_random")
    murmur = KeyedProducer(services.kafka, "murmur2_random")
    # partition p starts with 80 * p records, so offsets of different partitions are far apart
    fillers = [sid for p in range(PARTITIONS) for sid in session_ids(f"fill{p}", 4 * p, owned_by(p))]
    murmur.send(interleaved(events_of(fillers, items, length=20)))
    by_crc = events_of(
        session_ids("crc", 6, lambda sid: crc32_partition(sid) != owner(sid))
        + session_ids("crc", 2, lambda sid: crc32_partition(sid) == owner(sid)),
        items,
    )
    by_murmur = events_of(session_ids("m2", 8, lambda sid: True), items)
    mixed = events_of(session_ids("mix", 6, lambda sid: crc32_partition(sid) != owner(sid)), items)
    worker = services.start_worker("worker-a")

    crc.send(interleaved(by_crc))
    murmur.send(interleaved(by_murmur))
    # the same sessions from both producers, alternately: each event waits for the one before it to be applied,
    # as a shopper's next click waits for the page (the order of two partitions is otherwise undefined)
    for n in range(EVENTS_PER_SESSION):
        (murmur if n % 2 else crc).send([events[n] for events in mixed.values()])
        states = wait_for_sessions(services, dict.fromkeys(mixed, n + 1), timeout_s=60)
        assert all(states.get(sid) and states[sid].events == n + 1 for sid in mixed), (n, states, worker.log_tail())

    assert all(ps == {owner(sid)} for sid, ps in murmur.placed.items())  # librdkafka's murmur2 is ours
    assert all(ps == {crc32_partition(sid)} for sid, ps in crc.placed.items())
    everything = {**by_crc, **by_murmur, **mixed}
    states = wait_for_sessions(services, dict.fromkeys(everything, EVENTS_PER_SESSION), timeout_s=120)
    assert worker.alive(), worker.log_tail()
    client = services.client()
    for sid, events in everything.items():
        state = states.get(sid)
        assert state is not None, f"{sid} never reached Redis\n{worker.log_tail()}"
        assert state.items == [e.item_id for e in events], sid  # every event, once, in order
        assert state.events == EVENTS_PER_SESSION and state.partition == owner(sid)
        raw = client.get(recs_key(services.project, sid))
        assert raw, f"no refreshed recommendations for {sid}"
        recs = Recommendations.from_json(raw)  # type: ignore[arg-type]
        assert recs.event_id == events[-1].event_id == state.last_event_id and recs.items
    client.close()

    # forwarded: exactly the records that arrived off their session's partition, each on its owner's
    off_owner = {e.event_id for e in crc.sent if crc32_partition(e.session_id) != owner(e.session_id)}
    assert set(forwarded_event_ids(services.kafka)) == off_owner
