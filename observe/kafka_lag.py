"""The broker's side of status: reachable, the events topic, the worker group and its lag per partition.

Lag is end offset (the high watermark) minus the group's committed offset, per partition. Every step that a
broker refuses is reported in `notes` rather than failing the whole check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamrec.config import DLQ_TOPIC
from streamrec.devstack.cli_args import kafka_logger

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group never committed on this partition


@dataclass
class PartitionLag:
    partition: int
    committed: int | None  # None: the group has not committed here yet
    start: int
    end: int
    lag: int


@dataclass
class BrokerReport:
    ok: bool
    error: str = ""
    brokers: int = 0
    group: str = ""
    group_state: str = "unknown"
    members: int | None = None
    partitions: list[PartitionLag] = field(default_factory=list)
    dead_letters: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)


def partition_lag(partition: int, committed: int | None, start: int, end: int) -> PartitionLag:
    """Lag of one partition; with no commit yet, everything from the start offset is still to be read."""
    position = start if committed is None or committed < 0 else committed
    return PartitionLag(
        partition, None if committed is None or committed < 0 else committed, start, end, max(0, end - position)
    )


def check_broker(
    bootstrap: str, topic: str, group: str, timeout_s: float = 3.0, security: dict[str, Any] | None = None
) -> BrokerReport:
    """`security`: confluent-kafka settings for SASL/SSL brokers (streamrec.config.confluent_security)."""
    report = BrokerReport(ok=False, group=group)
    # every client below gets these; librdkafka's log lines (each failed connect) show only with `streamrec -v`
    security = {**(security or {}), "logger": kafka_logger()}
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            **security,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        report.error = f"unreachable: {_reason(exc)}"
        return report
    report.brokers = len(metadata.brokers)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        report.error = f"topic {topic} does not exist"
        return report
    report.ok = True
    partitions = sorted(metadata.topics[topic].partitions)
    _describe_group(admin, group, report, timeout_s)
    consumer = _side_consumer(bootstrap, group, security)
    try:
        committed = _committed(
            admin, {"bootstrap.servers": bootstrap, **security}, topic, group, partitions, report, timeout_s
        )
        bounds = end_offsets(consumer, topic, partitions, timeout_s)
        report.partitions = [partition_lag(p, committed.get(p), *bounds[p]) for p in partitions]
        if DLQ_TOPIC in metadata.topics:
            dlq = end_offsets(consumer, DLQ_TOPIC, sorted(metadata.topics[DLQ_TOPIC].partitions), timeout_s)
            report.dead_letters = sum(end - start for start, end in dlq.values())
    except KafkaException as exc:
        report.notes.append(f"offsets unavailable: {_reason(exc)}")
    finally:
        consumer.close()
    return report


def end_offsets(consumer: Consumer, topic: str, partitions: list[int], timeout_s: float) -> dict[int, tuple[int, int]]:
    """(start, end) per partition: the low and high watermarks."""
    bounds = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s) for p in partitions}
    return {p: (int(low), int(high)) for p, (low, high) in bounds.items()}


def _describe_group(admin: AdminClient, group: str, report: BrokerReport, timeout_s: float) -> None:
    try:
        description = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group].result(timeout_s)
    except KafkaException as exc:
        report.notes.append(f"group {group} not described: {_reason(exc)}")
        return
    report.group_state = str(description.state.name).lower()
    report.members = len(description.members)


def _committed(
    admin: AdminClient,
    client: dict[str, Any],
    topic: str,
    group: str,
    partitions: list[int],
    report: BrokerReport,
    timeout_s: float,
) -> dict[int, int]:
    """The group's committed offsets: AdminClient's OffsetFetch, else a consumer's of that group (older brokers).

    That consumer never subscribes, so it never joins the group and cannot trigger a rebalance of the workers.
    """
    wanted = [TopicPartition(topic, p) for p in partitions]
    try:
        request = ConsumerGroupTopicPartitions(group, wanted)
        result = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)[group].result(timeout_s)
        found = result.topic_partitions
    except KafkaException as exc:
        report.notes.append(f"committed offsets read by a consumer ({_reason(exc)})")
        reader = Consumer({**client, "group.id": group, "enable.auto.commit": False})
        try:
            found = reader.committed(wanted, timeout=timeout_s)
        finally:
            reader.close()
    return {tp.partition: int(tp.offset) for tp in found if tp.topic == topic and tp.offset != NO_OFFSET}


def _side_consumer(bootstrap: str, group: str, security: dict[str, Any]) -> Consumer:
    """A consumer that never joins `group` (assign only, no commits): reads offsets without disturbing it."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        **security,
        "group.id": f"{group}.status-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 10,
        "auto.offset.reset": "latest",
        "log_level": 3,
    }
    return Consumer(config)


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else exc
    return str(error.str()) if isinstance(error, KafkaError) else str(error)
