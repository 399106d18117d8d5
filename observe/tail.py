"""Read the tail of the events topic on a side thread: count events per second and sample some for freshness.

The reader assigns every partition (it never joins the workers' group, so it cannot cause a rebalance) from the
end, and skips records created before it started (a record's timestamp can predate its append, so the first
fetch can hold a few that are not part of the live rate).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from google.protobuf.message import DecodeError

from streamrec.protos import events_pb2

log = logging.getLogger(__name__)

# (session_id, event_id, created_ms, offset) of a sampled event, handed to the freshness tracker
Sampled = Callable[[str, str, float, int], None]


class TokenBucket:
    """At most `rate` samples per second on average, in bursts of at most one second's worth."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class TailReader:
    def __init__(self, client: dict[str, Any], topic: str, samples_per_s: float, on_sample: Sampled) -> None:
        self.client = client  # bootstrap.servers and any security settings
        self.topic = topic
        self.on_sample = on_sample
        self.bucket = TokenBucket(samples_per_s, time.monotonic())
        self.count = 0  # events seen since start; read by the figures' ticker (an int: no lock needed)
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observe-tail", daemon=True)

    def start(self) -> TailReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        started_ms = time.time() * 1000 - 1000
        consumer = Consumer(
            {
                **self.client,
                "group.id": f"streamrec-observe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "log_level": 3,
            }
        )
        try:
            self._assign(consumer)
            while not self._stop.is_set():
                for message in consumer.consume(num_messages=1000, timeout=0.1):
                    if message.error() is None:
                        offset = int(message.offset() or 0)
                        self._seen(message.key(), message.value(), message.timestamp()[1], offset, started_ms)
        except KafkaException as exc:  # the page shows it; the rest of the page keeps working
            self.error = str(exc)
            log.warning("tail of %s stopped: %s", self.topic, exc)
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> None:
        while not self._stop.is_set():  # short waits: `stop` must not hang on a broker that is down
            try:
                metadata = consumer.list_topics(self.topic, timeout=1)
            except KafkaException as exc:
                self.error = f"broker unreachable: {exc}"
                self._stop.wait(1)
                continue
            partitions = sorted(metadata.topics[self.topic].partitions)
            if partitions:
                consumer.assign([TopicPartition(self.topic, p, OFFSET_END) for p in partitions])
                self.error = ""
                return
            self._stop.wait(1)

    def _seen(self, key: bytes | None, value: bytes | None, created_ms: int, offset: int, started_ms: float) -> None:
        if created_ms < started_ms:
            return
        self.count += 1
        if not key or not value or not self.bucket.take(time.monotonic()):
            return
        try:
            event = events_pb2.Event.FromString(value)
        except DecodeError:  # a record the worker will dead-letter: nothing to follow
            return
        if event.event_id and event.session_id:
            self.on_sample(event.session_id, event.event_id, float(created_ms), offset)
