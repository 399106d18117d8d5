"""`streamrec status` against a real local stack: all up with lag per partition, then a stopped scorer fails it.

The command runs as a process (`python -m streamrec.observe.cli status`, the same handler `streamrec status` calls).
The last test stops the scorer, so it stays last in this module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streamrec.config import EVENTS_TOPIC
from streamrec.events import CanonicalEvent
from streamrec.observe.config import Targets
from streamrec.stream.producer import EventProducer
from tests.observe.conftest import ObservedStack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec.observe.cli", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def address_args(targets: Targets) -> list[str]:
    args = ["--kafka", targets.kafka, "--redis", targets.redis, "--grpc", targets.grpc, "--project", targets.project]
    for endpoint in targets.worker_metrics:
        args += ["--worker-metrics", endpoint]
    for endpoint in targets.scorer_metrics:
        args += ["--scorer-metrics", endpoint]
    return args


def send_clicks(kafka: str, n: int) -> None:
    producer = EventProducer(kafka, EVENTS_TOPIC)
    now = int(time.time() * 1000)
    for i in range(n):
        event = CanonicalEvent(f"status-{now}-{i}", "click", f"status-s{i % 17}", "", f"i{i % 50:05d}", now)
        producer.send(event.session_id, event.to_bytes())
    assert producer.flush(10) == 0 and not producer.failed


def json_status(targets: Targets) -> tuple[int, dict[str, Any]]:
    done = status("--json", *address_args(targets))
    return done.returncode, json.loads(done.stdout)


def test_all_up_with_lag_per_partition(observed_stack: ObservedStack) -> None:
    targets = observed_stack.targets
    send_clicks(targets.kafka, 200)
    deadline = time.monotonic() + 30
    code, report = json_status(targets)
    while report["lag"]["total"] > 0 and time.monotonic() < deadline:  # the worker catches up
        time.sleep(1)
        code, report = json_status(targets)
    assert code == 0, report
    assert report["ok"] and {c["state"] for c in report["components"].values()} == {"up"}
    partitions = report["lag"]["partitions"]
    assert [p["partition"] for p in partitions] == [0, 1, 2, 3]
    # end offsets count records: together they hold at least what was sent
    assert sum(p["end"] for p in partitions) >= 200
    assert all(p["committed"] == p["end"] and p["lag"] == 0 for p in partitions), partitions
    workers = report["components"]["workers"]["workers"]
    assert sorted(p for w in workers for p in w["partitions"]) == [0, 1, 2, 3]
    scorer = report["components"]["scorer"]
    assert scorer["health"] == "SERVING" and scorer["redis_ok"] and scorer["model_version"]
    assert scorer["providers"] == ["CPUExecutionProvider"]
    assert report["components"]["redis"]["used_memory"] > 0


def test_table_shows_every_component_and_partition(observed_stack: ObservedStack) -> None:
    done = status(*address_args(observed_stack.targets))
    assert done.returncode == 0, done.stdout + done.stderr
    for needle in (
        "broker",
        "redis",
        "workers",
        "scorer",
        "PARTITION",
        "status: all up",
        observed_stack.addresses.grpc,
    ):
        assert needle in done.stdout, done.stdout


def test_reads_a_stack_file(observed_stack: ObservedStack, tmp_path: Path) -> None:
    observed_stack.addresses.write(tmp_path)
    done = status("--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert observed_stack.targets.kafka in done.stdout


def test_lag_threshold_exits_2(observed_stack: ObservedStack) -> None:
    producer = EventProducer(observed_stack.targets.kafka, EVENTS_TOPIC)
    producer.send("status-lag", b"not a protobuf")  # dead-lettered by the worker: committed afterwards
    producer.flush(10)
    code, report = json_status(observed_stack.targets)
    assert code in (0, 2) and report["dead_letters"] is not None
    done = status("--max-lag", "-1", *address_args(observed_stack.targets))
    assert done.returncode == 2, done.stdout


def test_missing_stack_file_is_a_clear_error(tmp_path: Path) -> None:
    done = status("--state-dir", str(tmp_path))
    assert done.returncode == 1 and "no stack is running there" in done.stderr


def test_stopped_scorer_makes_status_fail(observed_stack: ObservedStack) -> None:
    observed_stack.stack.stop_service("scorer")
    done = status(*address_args(observed_stack.targets))
    assert done.returncode == 1, done.stdout
    assert "status: DOWN: scorer" in done.stdout
    code, report = json_status(observed_stack.targets)
    assert code == 1 and not report["ok"]
    assert report["components"]["scorer"]["state"] == "down"
    assert report["components"]["broker"]["ok"] and report["components"]["redis"]["ok"]
