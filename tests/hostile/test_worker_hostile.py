"""A corpus of hostile records through a real broker and worker: an oversize record near Kafka's 1 MB default
limit, malformed UTF-8, huge ids, NaN and infinite prices and random garbage, mixed into good events. Each bad
record reaches the dead-letter topic with its reason, the counters are exact, the good events are all applied, and
the worker neither stops nor grows."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamrec.config import DLQ_TOPIC, EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.errors import InvalidEvent
from streamrec.events import CanonicalEvent
from streamrec.protos import events_pb2
from streamrec.stream.decode import decode_event
from streamrec.stream.producer import EventProducer
from tests.faults.support import metric, rss_mb, scrape, start_services
from tests.hostile.records import string_field_bytes
from tests.integration.harness import Services, applied_total, ground_truth, item_totals

pytestmark = pytest.mark.integration

BIG_RECORD_BYTES = 900_000  # under every 1 MB limit on the way: producers, broker, the worker's dead-letter producer
KAFKA_DEFAULT_MAX_BYTES = 1_048_576
KAFKA_ACCEPTED_BYTES = 1_040_000  # accepted by Kafka's defaults, over Faust's producer default of 1,000,000
MAX_EVENT_BYTES = 16_384  # the worker's default
RSS_GROWTH_MB = 50.0  # the corpus holds ~3 MB of bad bytes; a worker that kept them would grow past this


def hostile_corpus(now: int, seed: int = 11) -> list[bytes]:
    def event(**kw: object) -> events_pb2.Event:
        fields: dict[str, object] = {
            "event_id": uuid.uuid4().hex,
            "type": 2,
            "session_id": "hostile",
            "item_id": "i1",
            "ts_ms": now,
        }
        fields.update(kw)
        return events_pb2.Event(**fields)  # type: ignore[arg-type]

    rng = random.Random(seed)
    valid = event().SerializeToString()
    corpus = [
        rng.randbytes(BIG_RECORD_BYTES),  # oversize: garbage, far over the worker's limit
        event(category_id="c" * (MAX_EVENT_BYTES + 1)).SerializeToString(),  # oversize: a real event, just too big
        *(valid + string_field_bytes(number, b"\xc3\x28") for number in (1, 3, 4, 5, 6)),  # bad UTF-8, every field
        event(session_id="s" * 10_000).SerializeToString(),  # huge id under the size limit
        event(item_id="\U0001f600" * 300).SerializeToString(),  # 300 characters, 1,200 bytes
        event(price=float("nan")).SerializeToString(),
        event(price=float("inf")).SerializeToString(),
        event(price=-float("inf")).SerializeToString(),
        event(type=2**31 - 1).SerializeToString(),
        event(ts_ms=2**63 - 1).SerializeToString(),
        b"",
    ]
    corpus += [rng.randbytes(rng.randrange(1, 2000)) for _ in range(60)]  # garbage of every size
    return corpus


def expected_reason(raw: bytes, now: int) -> str:
    try:
        decode_event(raw, now, MAX_EVENT_BYTES, 10 * 60_000, 400 * 86_400_000)
    except InvalidEvent as bad:
        return bad.reason
    raise AssertionError("a record of the hostile corpus decodes")


@dataclass
class HostileStack:
    services: Services
    worker: Service
    metrics_port: int
    producer: EventProducer


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory: pytest.TempPathFactory, trained_registry: Path) -> Iterator[HostileStack]:
    """Broker, Redis, scorer and one worker with a metrics port, warmed up with a few good events."""
    metrics_port = free_port()
    with LocalStack(state_dir=tmp_path_factory.mktemp("hostile-stack")) as stack:
        services = start_services(stack, trained_registry)
        services.env["STREAMREC_STREAM_METRICS_PORT"] = str(metrics_port)
        worker = services.start_worker("worker")
        # Kafka's own defaults: the broker takes records up to 1,048,588 bytes, a Java producer sends 1,048,576
        limits: dict[str, object] = {"message.max.bytes": KAFKA_DEFAULT_MAX_BYTES, "log_level": 2}  # quiet at teardown
        producer = EventProducer(services.kafka, EVENTS_TOPIC, **limits)
        now = int(time.time() * 1000)
        warm_up = [CanonicalEvent(f"w{n}", "click", f"w{n % 3}", "", f"iw{n % 2}", now - 5000 + n) for n in range(20)]
        deliver(producer, [(e.session_id, e.to_bytes()) for e in warm_up])
        await_applied(services, worker, warm_up)
        yield HostileStack(services, worker, metrics_port, producer)


def deliver(producer: EventProducer, records: list[tuple[str, bytes]]) -> None:
    for key, value in records:
        producer.send(key, value)
    assert producer.flush(30) == 0 and not producer.failed, producer.failed[:3]


def await_applied(services: Services, worker: Service, events: list[CanonicalEvent], timeout_s: float = 60) -> None:
    """Wait until every event of `events` (on items no other test uses) is applied, then check the counts."""
    truth, _ = ground_truth(events)
    client = services.client()
    deadline = time.monotonic() + timeout_s
    while applied_total(client, services.project, sorted(truth)) < len(events):
        assert worker.alive(), worker.log_tail(40)
        assert time.monotonic() < deadline, "the good events around the hostile ones were not all applied"
        time.sleep(0.2)
    assert item_totals(client, services.project, sorted(truth)) == truth


def dead_letter_counts(port: int, reasons: set[str]) -> Counter[str]:
    scraped = scrape(port)
    return Counter({r: int(metric(scraped, "streamrec_worker_dead_letters_total", {"reason": r})) for r in reasons})


def test_hostile_records_are_dead_lettered_counted_and_survived(hostile_stack: HostileStack) -> None:
    services, worker = hostile_stack.services, hostile_stack.worker
    now = int(time.time() * 1000)
    good = [CanonicalEvent(f"g{n}", "click", f"s{n % 9}", "", f"i{n % 6}", now - 5000 + n) for n in range(300)]
    bad = hostile_corpus(now)
    reasons = [expected_reason(raw, now) for raw in bad]
    counted_before = dead_letter_counts(hostile_stack.metrics_port, set(reasons))
    letters_from = letters_so_far(services.kafka)
    rss_before = rss_mb(worker.process.pid)

    records = []
    for n, event in enumerate(good):
        records.append((event.session_id, event.to_bytes()))
        if n < len(bad):
            records.append((event.session_id, bad[n]))
    deliver(hostile_stack.producer, records)
    await_applied(services, worker, good)
    letters = read_dead_letters(services.kafka, letters_from, len(bad))
    counted = dead_letter_counts(hostile_stack.metrics_port, set(reasons)) - counted_before
    rss_after = rss_mb(worker.process.pid)

    assert worker.alive(), worker.log_tail(40)
    assert sorted(letters) == sorted(zip(bad, reasons, strict=True))  # original bytes, each with its reason
    assert counted == Counter(reasons)  # exact counters, by reason
    assert rss_after - rss_before < RSS_GROWTH_MB, (rss_before, rss_after)


def test_a_record_over_fausts_producer_limit_is_dead_lettered_whole(hostile_stack: HostileStack) -> None:
    """A 1,040,000-byte record: under Kafka's default limits, over Faust's default producer limit of 1,000,000
    bytes. It is dead-lettered as oversize with its original bytes, and the good events around it applied."""
    services, worker = hostile_stack.services, hostile_stack.worker
    now = int(time.time() * 1000)
    good = [CanonicalEvent(f"b{n}", "click", f"sb{n % 4}", "", f"ib{n % 3}", now - 5000 + n) for n in range(40)]
    counted_before = dead_letter_counts(hostile_stack.metrics_port, {"oversize"})
    big = random.Random(5).randbytes(KAFKA_ACCEPTED_BYTES)
    records = [(e.session_id, e.to_bytes()) for e in good]
    records.insert(20, ("sb0", big))
    deliver(hostile_stack.producer, records)
    await_applied(services, worker, good, timeout_s=15)
    assert dead_letter_counts(hostile_stack.metrics_port, {"oversize"}) - counted_before == Counter(oversize=1)
    time.sleep(1)  # the dead-letter producer lingers a little
    ours = [(len(v), r) for v, r in read_dead_letters(services.kafka, 0, 10**9, timeout_s=2) if v and big.startswith(v)]
    assert ours == [(len(big), "oversize")], ours  # the whole record, not cut to fit


def letters_so_far(kafka: str) -> int:
    """How many dead letters the topic holds now, counted by reading them."""
    return len(read_dead_letters(kafka, 0, count=10**9, timeout_s=2))


def read_dead_letters(kafka: str, start: int, count: int, timeout_s: float = 30) -> list[tuple[bytes, str]]:
    """`count` letters from offset `start` of the dead-letter topic (assigned, not subscribed: no group join)."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": f"dlq-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(DLQ_TOPIC, 0, start)])
    letters: list[tuple[bytes, str]] = []
    deadline = time.monotonic() + timeout_s
    while len(letters) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            reason = dict(message.headers() or [])["reason"]
            letters.append((message.value() or b"", reason.decode() if isinstance(reason, bytes) else str(reason)))
    consumer.close()
    return letters
