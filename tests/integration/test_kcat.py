"""A client outside Python reads and writes our topics: Debian's stock kcat (librdkafka), with the commands the
README shows. kcat's default partitioner (consistent_random, CRC32 of the key) places many sessions on another
partition than Kafka's murmur2: those events must still reach their session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streamrec.config import DLQ_TOPIC, EVENTS_TOPIC
from streamrec.devstack.probe import wait_for_refresh
from streamrec.devstack.stack import StackAddresses
from streamrec.features.session_store import SessionState, session_key
from streamrec.stream.partitioning import owner_partition

KCAT = shutil.which("kcat")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(KCAT is None, reason="Debian's kcat is not installed (`make test` installs it with apt)"),
]
PARTITIONS = 4  # the stack's events topic


def kcat(bootstrap: str, *args: str) -> str:
    assert KCAT is not None
    done = subprocess.run([KCAT, "-b", bootstrap, *args], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode(errors="replace")


def encoded_event(session_id: str, item: str, tmp_path: Path) -> Path:
    """`streamrec event ...` as a user runs it, into a file: kcat sends each file it is given as one record."""
    path = tmp_path / f"{uuid.uuid4().hex}.bin"
    argv = [sys.executable, "-m", "streamrec.cli", "event", "--session", session_id, "--item", item]
    path.write_bytes(subprocess.run(argv, capture_output=True, timeout=60, check=True).stdout)
    return path


def crc32_partition(key: str) -> int:
    """Where librdkafka's consistent_random (kcat's default) puts a keyed record."""
    return zlib.crc32(key.encode()) % PARTITIONS


@pytest.fixture
def store(streamrec_stack: StackAddresses) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(streamrec_stack.redis)
    yield client
    client.close()


def test_kcat_lists_the_topics(streamrec_stack: StackAddresses) -> None:
    metadata = json.loads(kcat(streamrec_stack.kafka, "-L", "-J"))
    topics = {topic["topic"]: topic for topic in metadata["topics"]}
    assert {EVENTS_TOPIC, DLQ_TOPIC} <= set(topics)
    assert len(topics[EVENTS_TOPIC]["partitions"]) == PARTITIONS


def test_an_event_produced_with_kcat_refreshes_its_session_on_any_partition(
    streamrec_stack: StackAddresses, store: redis.Redis, tmp_path: Path
) -> None:
    sessions = [f"kcat-{uuid.uuid4().hex[:8]}" for _ in range(40)]
    elsewhere = next(s for s in sessions if crc32_partition(s) != owner_partition(s, PARTITIONS))
    for item in ("i00001", "i00002", "i00003"):
        event_file = encoded_event(elsewhere, item, tmp_path)
        kcat(streamrec_stack.kafka, "-P", "-t", EVENTS_TOPIC, "-k", elsewhere, str(event_file))
        # one at a time: each must reach the session, in order, although kcat put it on a non-owner partition
        event_id = _event_id(event_file)
        wait_for_refresh(store, streamrec_stack.project, elsewhere, event_id, timeout_s=30)
    state = SessionState.from_json(store.get(session_key(streamrec_stack.project, elsewhere)))  # type: ignore[arg-type]
    assert state.items == ["i00001", "i00002", "i00003"]
    assert state.events == 3


def test_kcat_reads_dead_letters_with_their_reason(streamrec_stack: StackAddresses, tmp_path: Path) -> None:
    session_id = f"kcat-dlq-{uuid.uuid4().hex[:8]}"
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x08\x96\x01 not an Event \xff")
    kcat(streamrec_stack.kafka, "-P", "-t", EVENTS_TOPIC, "-k", session_id, str(garbage))
    letters = ""
    for _ in range(30):  # the worker dead-letters it within a second or so; kcat -e reads what is there now
        letters = kcat(streamrec_stack.kafka, "-C", "-t", DLQ_TOPIC, "-o", "beginning", "-e", "-q", "-f", "%k\t%h\n")
        if session_id in letters:
            break
        subprocess.run(["sleep", "1"], check=True)
    ours = [line for line in letters.splitlines() if line.startswith(session_id + "\t")]
    assert ours, f"no dead letter for {session_id} in:\n{letters[-2000:]}"
    headers = dict(pair.split("=", 1) for pair in ours[0].split("\t", 1)[1].split(","))
    assert headers["reason"] == "undecodable"


def _event_id(event_file: Path) -> str:
    from streamrec.protos import events_pb2

    event = events_pb2.Event()
    event.ParseFromString(event_file.read_bytes())
    return event.event_id
