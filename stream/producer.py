"""Publish canonical events to the events topic, keyed by session, paced to a target rate.

Producers should partition like the Java client (murmur2) so every producer, in any language, puts a session on
its own partition; confluent-kafka's own default (CRC32) would not, so it is set here explicitly. (The worker
forwards an event found elsewhere to its session's partition, at the cost of a second trip through Kafka.)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, Producer

from streamrec.config import CoreSettings, confluent_security
from streamrec.events import CanonicalEvent

PRODUCER_DEFAULTS = {
    "partitioner": "murmur2_random",
    "linger.ms": 5,
    "enable.idempotence": True,
    "acks": "all",
    "message.timeout.ms": 60_000,
}


@dataclass
class ReplayResult:
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    checksum: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class EventProducer:
    """confluent-kafka producer with delivery accounting; `close()` flushes and raises nothing."""

    def __init__(self, bootstrap: str, topic: str, **overrides: object) -> None:
        self.topic = topic
        # broker security (SASL/SSL) comes from the STREAMREC_KAFKA_* settings, like the worker's
        security = confluent_security(CoreSettings())
        self.producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, **security, **overrides})
        self.delivered = 0
        self.failed: list[str] = []
        # connect and fetch metadata now, so the first event's latency is not the connection's
        self.producer.list_topics(topic, timeout=10)

    def _on_delivery(self, err: object, msg: object) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            self.delivered += 1

    def send(self, key: str, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=key.encode(), value=value, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.05)
            except KafkaException as exc:
                self.failed.append(str(exc))
                break
        self.producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> int:
        return int(self.producer.flush(timeout_s))


def replay(
    events: Iterable[CanonicalEvent],
    bootstrap: str,
    topic: str,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> ReplayResult:
    """Send events in order at `rate` events/s (None = as fast as possible); count and checksum what was sent.

    The checksum is the sha256 over the sent event ids in order, so a run can be matched to what a worker saw.
    """
    producer = EventProducer(bootstrap, topic)
    digest = hashlib.sha256()
    result = ReplayResult()
    start = time.perf_counter()
    bar = _progress_bar(limit) if progress else None
    for n, event in enumerate(events):
        if limit is not None and n >= limit:
            break
        if rate:
            pace(start, n, rate)
        producer.send(event.session_id, event.to_bytes())
        digest.update(event.event_id.encode() + b"\n")
        result.sent += 1
        if bar is not None:
            bar.update(1)
    remaining = producer.flush()
    result.seconds = time.perf_counter() - start
    result.failed = len(producer.failed) + remaining
    result.errors = producer.failed[:10]
    result.checksum = digest.hexdigest()
    if bar is not None:
        bar.close()
    return result


def pace(start: float, n: int, rate: float) -> None:
    """Sleep until event `n` of a stream started at `start` (perf_counter) is due at `rate` events/s."""
    due = start + n / rate
    delay = due - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def _progress_bar(total: int | None):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, unit="ev", desc="replay")
