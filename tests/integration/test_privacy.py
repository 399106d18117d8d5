"""No raw user id reaches anything edge-facing: every Redis key and value, and the state changelog, hold only
keyed pseudonyms (streamrec/privacy.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.probe import wait_for_refresh
from streamrec.events import CanonicalEvent
from streamrec.privacy import Pseudonymizer
from streamrec.stream.producer import EventProducer
from tests.integration.harness import Services

pytestmark = pytest.mark.integration


def everything_in_redis(client: Any) -> bytes:
    """Every key and every value of every type, concatenated, for a substring search."""
    chunks: list[bytes] = []
    for key in client.scan_iter(count=1000):
        chunks.append(key)
        kind = client.type(key)
        if kind == b"string":
            chunks.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                chunks += [field, value]
        elif kind == b"list":
            chunks += client.lrange(key, 0, -1)
        elif kind == b"set":
            chunks += list(client.smembers(key))
        elif kind == b"zset":
            chunks += client.zrange(key, 0, -1)
    return b"\n".join(chunks)


def changelog_bytes(kafka: str, project: str) -> bytes:
    topic = f"{project}.streamrec-worker-sessions-changelog"
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    # assign, not subscribe: no group join (which takes half the session timeout on the dev broker)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    chunks: list[bytes] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            chunks += [message.key() or b"", message.value() or b""]
            idle_since = time.monotonic()
    consumer.close()
    return b"\n".join(chunks)


def test_no_raw_user_id_in_redis_or_the_changelog(services: Services) -> None:
    services.start_worker("worker")
    raw_users = [f"alice-{uuid.uuid4().hex[:6]}@example.com", f"bob-{uuid.uuid4().hex[:6]}"]
    now = int(time.time() * 1000)
    producer = EventProducer(services.kafka, EVENTS_TOPIC)
    last = {}
    for n in range(40):
        user = raw_users[n % 2]
        session = f"priv-{n % 4}"
        kind = "purchase" if n % 10 == 9 else "click"
        event = CanonicalEvent(f"p{n}", kind, session, user, f"i{n % 7}", now - 1000 + n, category_id="c1")
        producer.send(session, event.to_bytes())
        last[session] = event.event_id
    producer.flush(10)
    client = services.client()
    for session, event_id in last.items():
        wait_for_refresh(client, services.project, session, event_id, timeout_s=60)

    blob = everything_in_redis(client)
    pseudonym = Pseudonymizer(None, "k1")
    assert pseudonym(raw_users[0]).encode() in blob  # the user's features exist, under the pseudonym
    changelog = changelog_bytes(services.kafka, services.project)
    assert changelog  # the changelog was read
    for user in raw_users:
        assert user.encode() not in blob
        assert user.encode() not in changelog
    assert cast(int, client.exists(f"{services.project}:agg:user:{pseudonym(raw_users[1])}")) == 1
