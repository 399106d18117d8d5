"""`streamrec replay` and `streamrec loadtest` as a user meets them: arguments, plain errors, real output."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamrec.cli import main
from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.stack import create_topics
from streamrec.loadtest.cli import register
from streamrec.loadtest.schedule import Pace, plan
from streamrec.loadtest.sources import DataSpec, load_events
from streamrec.protos import events_pb2
from tests.loadtest.test_report import SCENARIO, _measured


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_register_adds_replay_and_loadtest_run_compare() -> None:
    parser = _parser()
    args = parser.parse_args(["replay", "--data", "yoochoose-100k-test", "--speedup", "600", "--limit", "5"])
    assert (args.data, args.speedup, args.rate, args.limit) == ("yoochoose-100k-test", 600.0, None, 5)
    args = parser.parse_args(["loadtest", "run", "s.yaml", "--processes", "3", "--out", "o"])
    assert (args.loadtest, args.processes, args.out) == ("run", 3, Path("o"))
    assert parser.parse_args(["loadtest", "compare", "a", "b"]).loadtest == "compare"
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "--rate", "5", "--speedup", "2"])


def test_missing_data_directory_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["replay", "--data", "yoochoose-100k-test", "--data-dir", str(tmp_path / "absent")])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert "error: source 'yoochoose-100k-test' needs the real data directory" in err
    assert "Traceback" not in err
    assert main(["replay", "--data", "yoochoose-100k-test", "--data-dir", str(tmp_path / "absent")]) != 0
    assert "Traceback" not in capsys.readouterr().err


def test_compare_prints_both_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamrec.loadtest.report import build_report

    for name, latency in (("a", 4.0), ("b", 6.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(build_report(SCENARIO, _measured(latency))))
    args = _parser().parse_args(["loadtest", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert args.handler(args) == 0
    assert "Recommend p99 ms" in capsys.readouterr().out
    args = _parser().parse_args(["loadtest", "compare", str(tmp_path / "a"), str(tmp_path / "nothing")])
    assert args.handler(args) == 2


@pytest.mark.integration
def test_replay_sends_exactly_what_it_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = [p.event for p in plan(load_events(DataSpec(sessions=40)), Pace(), limit=150)]
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        kafka = stack.start_broker()
        create_topics(kafka, 4)
        args = _parser().parse_args(
            [
                "replay",
                "--synthetic",
                "--sessions",
                "40",
                "--limit",
                "150",
                "--rate",
                "0",
                "--bootstrap",
                kafka,
                "--no-progress",
            ]
        )
        before_ms = int(time.time() * 1000)
        assert args.handler(args) == 0
        summary = json.loads(capsys.readouterr().out)
        received = _consume(kafka, 150)
    digest = hashlib.sha256(b"".join(e.event_id.encode() + b"\n" for e in expected)).hexdigest()
    assert (summary["sent"], summary["delivered"], summary["failed"]) == (150, 150, 0)
    assert summary["checksum"] == digest
    assert sorted(m.event_id for _, m in received) == sorted(e.event_id for e in expected)
    assert all(key == m.session_id for key, m in received)  # keyed by session
    assert all(m.ts_ms >= before_ms for _, m in received)  # event times rebased to the send time


def _consume(kafka: str, expected: int, timeout_s: float = 30.0) -> list[tuple[str, events_pb2.Event]]:
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    # assigned, not subscribed: no consumer-group join, which takes seconds on the dev broker
    consumer.assign([TopicPartition("streamrec.events", p, OFFSET_BEGINNING) for p in range(4)])
    out: list[tuple[str, events_pb2.Event]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            event = events_pb2.Event()
            event.ParseFromString(message.value() or b"")
            out.append(((message.key() or b"").decode(), event))
    consumer.close()
    return out
