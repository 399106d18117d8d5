"""A corpus of bad records mixed into good ones: each bad one reaches the dead-letter topic with its reason and
original bytes, each is counted by reason, and every good event is processed."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer

from streamrec.config import DLQ_TOPIC, EVENTS_TOPIC
from streamrec.devstack.localstack import free_port
from streamrec.events import CanonicalEvent
from streamrec.protos import events_pb2
from streamrec.stream.producer import EventProducer
from tests.integration.harness import Services, applied_total, ground_truth, item_totals

pytestmark = pytest.mark.integration


def bad_corpus(now: int) -> list[tuple[bytes, str]]:
    def event(**kw: object) -> bytes:
        fields: dict[str, object] = {
            "event_id": uuid.uuid4().hex,
            "type": "click",
            "session_id": "bad",
            "user_id": "",
            "item_id": "i1",
            "ts_ms": now,
        }
        fields.update(kw)
        return CanonicalEvent(**fields).to_bytes()  # type: ignore[arg-type]

    unknown_type = events_pb2.Event(event_id="x1", type=17, session_id="bad", item_id="i", ts_ms=now)  # type: ignore[arg-type]
    return [
        (b"\xff\xfe not protobuf", "undecodable"),
        (b"", "undecodable"),
        (event(item_id=""), "missing_field"),
        (unknown_type.SerializeToString(), "unknown_type"),
        (event(price=-3.0), "bad_value"),
        (event(session_id="s" * 1000), "bad_value"),
        (event(ts_ms=now + 86_400_000), "future_timestamp"),
        (event(ts_ms=now - 3 * 365 * 86_400_000), "stale_timestamp"),
        (event(category_id="c" * 20_000), "oversize"),
    ]


def test_bad_records_are_dead_lettered_with_reasons_and_counted(services: Services) -> None:
    metrics_port = free_port()
    services.env["STREAMREC_STREAM_METRICS_PORT"] = str(metrics_port)
    worker = services.start_worker("worker")
    now = int(time.time() * 1000)
    good = [CanonicalEvent(f"g{n}", "click", f"s{n % 7}", "", f"i{n % 5}", now - 1000 + n) for n in range(200)]
    bad = bad_corpus(now)
    producer = EventProducer(services.kafka, EVENTS_TOPIC)
    for n, event in enumerate(good):
        producer.send(event.session_id, event.to_bytes())
        if n % 20 == 0 and n // 20 < len(bad):  # one bad record after every 20 good ones
            producer.send(event.session_id, bad[n // 20][0])
    assert producer.flush(10) == 0

    truth, _ = ground_truth(good)
    client = services.client()
    deadline = time.monotonic() + 60
    while applied_total(client, services.project, sorted(truth)) < len(good) and time.monotonic() < deadline:
        assert worker.alive(), worker.log_tail()
        time.sleep(0.2)
    assert item_totals(client, services.project, sorted(truth)) == truth

    letters = read_dead_letters(services.kafka, expected=len(bad))
    assert sorted(letters) == sorted((payload, reason) for payload, reason in bad)
    assert len(bad) <= len(good) // 20
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    for reason in {r for _, r in bad}:
        count = sum(1 for _, r in bad if r == reason)
        assert f'streamrec_worker_dead_letters_total{{reason="{reason}"}} {count:.1f}' in scraped
    assert 'streamrec_worker_events_total{outcome="processed",type="click"} 200.0' in scraped
    # every record, bad ones too, is aged once when fetched: the broker's share of freshness
    fetched = re.search(r"^streamrec_worker_fetched_seconds_count (\S+)$", scraped, re.MULTILINE)
    assert fetched is not None and float(fetched.group(1)) >= len(good) + len(bad)


def read_dead_letters(kafka: str, expected: int, timeout_s: float = 30) -> list[tuple[bytes, str]]:
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": f"dlq-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([DLQ_TOPIC])
    letters: list[tuple[bytes, str]] = []
    deadline = time.monotonic() + timeout_s
    while len(letters) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            headers = dict(message.headers() or [])
            letters.append((message.value() or b"", headers["reason"].decode()))
    consumer.close()
    return letters
