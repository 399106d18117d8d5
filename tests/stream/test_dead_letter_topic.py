"""TopicDeadLetters without a broker: a letter is the record byte for byte up to the producer's limit, as aiokafka
sizes it, and a record past that limit is cut only as a last resort, with a `truncated_from` header."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streamrec.config import DLQ_MAX_MESSAGE_BYTES
from streamrec.stream.adapters import DEAD_LETTER_HEADROOM_BYTES, TopicDeadLetters
from streamrec.stream.config import StreamSettings
from streamrec.stream.processor import RawRecord

KAFKA_DEFAULT_MAX_BYTES = 1_048_588  # the largest record batch Apache Kafka's default broker settings accept
DEFAULT_LIMIT = StreamSettings.model_fields["producer_max_request_bytes"].default
WORST_DETAIL = "\U0001f600" * 600  # cut to 512 characters, 2,048 bytes of UTF-8: the biggest detail header


class SentLetters:
    """The one method of a Faust topic that TopicDeadLetters uses; records what it would produce."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        self.sent.append((key, value, headers))


def letter(record: RawRecord, limit: int, reason: str = "oversize") -> tuple[bytes | None, bytes, dict[str, bytes]]:
    topic = SentLetters()
    asyncio.run(TopicDeadLetters(topic, limit).send(record, reason, WORST_DETAIL))
    [sent] = topic.sent
    return sent


def request_bytes(sent: tuple[bytes | None, bytes, dict[str, Any]]) -> int:
    """The size aiokafka's producer checks against max_request_size before sending (MessageSizeTooLargeError)."""
    key, value, headers = sent
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers.items()))


def test_the_default_limit_is_the_dead_letter_topics_and_above_what_kafka_takes() -> None:
    assert DEFAULT_LIMIT == DLQ_MAX_MESSAGE_BYTES
    assert DEFAULT_LIMIT - DEAD_LETTER_HEADROOM_BYTES > KAFKA_DEFAULT_MAX_BYTES


@pytest.mark.parametrize("size", [1_040_000, KAFKA_DEFAULT_MAX_BYTES, DEFAULT_LIMIT - DEAD_LETTER_HEADROOM_BYTES - 64])
def test_any_record_the_events_topic_takes_is_dead_lettered_whole(size: int) -> None:
    """1,040,000 bytes used to land cut to about 984 KB (Faust's 1,000,000-byte producer limit less 16 KiB)."""
    original = random.Random(size).randbytes(size)
    key = b"k" * 64
    sent = letter(RawRecord(key, original, partition=2, offset=7), DEFAULT_LIMIT)
    assert sent[0] == key and sent[1] == original
    assert sent[2]["reason"] == b"oversize" and "truncated_from" not in sent[2]
    assert request_bytes(sent) <= DEFAULT_LIMIT


def test_a_record_past_the_limit_is_cut_to_fit_and_says_so() -> None:
    limit = 65_536
    original = random.Random(1).randbytes(100_000)
    key = b"s" * 5000
    sent_key, value, headers = sent = letter(RawRecord(key, original), limit)
    assert headers["truncated_from"] == b"key=5000 value=100000"
    assert sent_key == key[:1024] and original.startswith(value) and len(value) > limit // 2
    assert request_bytes(sent) <= limit


def test_a_small_letter_keeps_its_bytes_and_headers() -> None:
    original = b"\x00garbage\xff"
    key, value, headers = letter(RawRecord(b"s1", original), DEFAULT_LIMIT, reason="undecodable")
    assert (key, value) == (b"s1", original)
    assert set(headers) == {"reason", "detail"} and headers["reason"] == b"undecodable"
    assert headers["detail"] == WORST_DETAIL[:512].encode()
