"""Status without a whole stack: lag arithmetic, the table and exit codes, targets, and workers from heartbeats."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import redis

from streamrec.devstack.stack import Member
from streamrec.errors import ConfigError
from streamrec.observe.checks import (
    DEGRADED,
    DOWN,
    UP,
    Component,
    StackStatus,
    check_redis,
    check_workers,
    shard_url,
)
from streamrec.observe.cli import register, resolve_targets
from streamrec.observe.config import Targets, read_stack_file, redact, targets_from_stack, with_current_members
from streamrec.observe.kafka_lag import BrokerReport, partition_lag
from streamrec.observe.report import EXIT_DOWN, EXIT_LAGGING, EXIT_OK, exit_code, render_table, to_json

pytestmark = pytest.mark.integration  # the heartbeat tests use a real redis-server (tests/conftest.py)


def test_partition_lag() -> None:
    assert partition_lag(0, 40, 0, 50).lag == 10
    assert partition_lag(1, None, 5, 50).lag == 45  # never committed: all from the start offset
    assert partition_lag(2, -1001, 0, 7).committed is None
    assert partition_lag(3, 60, 0, 50).lag == 0  # a stale end offset never gives a negative lag


def status_of(*states: str, lag: int = 0) -> StackStatus:
    names = ["broker", "redis", "workers", "scorer"]
    components = [Component(n, s, f"{n} is {s}") for n, s in zip(names, states, strict=False)]
    broker = BrokerReport(
        ok=True,
        group="p.streamrec-worker",
        group_state="stable",
        partitions=[partition_lag(0, 10, 0, 10 + lag), partition_lag(1, 5, 0, 5)],
    )
    return StackStatus(components, broker, 0)


def test_exit_codes() -> None:
    assert exit_code(status_of(UP, UP, UP, UP)) == EXIT_OK
    assert exit_code(status_of(UP, UP, UP, DEGRADED)) == EXIT_OK
    assert exit_code(status_of(UP, DOWN, UP, UP)) == EXIT_DOWN
    assert exit_code(status_of(UP, UP, UP, UP, lag=100), max_lag=99) == EXIT_LAGGING
    assert exit_code(status_of(UP, UP, UP, UP, lag=99), max_lag=99) == EXIT_OK


def test_table_and_json() -> None:
    status = status_of(UP, UP, UP, DOWN, lag=3)
    table = render_table(status)
    assert "scorer     DOWN" in table and "status: DOWN: scorer" in table
    assert "PARTITION" in table and "0          10         13   3" in table
    doc = to_json(status)
    assert doc["ok"] is False and doc["lag"]["total"] == 3
    assert doc["components"]["scorer"] == {"ok": False, "state": "down", "summary": "scorer is down"}
    assert "DEGRADED: scorer" in render_table(status_of(UP, UP, UP, DEGRADED))
    json.dumps(doc)  # serialisable as is


def test_targets_from_a_stack_file(tmp_path: Path) -> None:
    data = {
        "kafka": "k:1",
        "redis": "redis://r:2/0",
        "grpc": "g:3",
        "project": "p",
        "registry": "/reg",
        "pid": 1,
        "state_dir": str(tmp_path),
        "processes": {},
        "metrics": {"worker": "127.0.0.1:9", "worker-1": "127.0.0.1:10", "scorer": "127.0.0.1:11"},
    }
    targets = targets_from_stack(data)
    assert targets.worker_metrics == ("127.0.0.1:9", "127.0.0.1:10") and targets.scorer_metrics == ("127.0.0.1:11",)
    assert targets.group == "p.streamrec-worker"
    (tmp_path / "stack.json").write_text(json.dumps(data))
    assert read_stack_file(tmp_path) == targets
    with pytest.raises(ConfigError, match="no stack is running"):
        read_stack_file(tmp_path / "nowhere")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["status", *argv])


def test_explicit_addresses_win_and_fill_in_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_REDIS_URL", "redis://env:6379/0")
    monkeypatch.setenv("STREAMREC_PROJECT", "envproject")
    targets = resolve_targets(parse("--kafka", "k:9", "--grpc", "g:1", "--worker-metrics", "w:1"))
    assert (targets.kafka, targets.grpc, targets.redis) == ("k:9", "g:1", "redis://env:6379/0")
    assert targets.project == "envproject" and targets.worker_metrics == ("w:1",)


def beat(client: redis.Redis, project: str, worker: str, partitions: list[int]) -> None:
    value = json.dumps({"partitions": partitions, "pid": 42, "at_ms": int(time.time() * 1000)})
    client.set(f"{project}:workers:{worker}", value, ex=3)


def test_workers_from_heartbeats(redis_url: str, project: str) -> None:
    targets = Targets(kafka="unused:1", redis=redis_url, grpc="unused:2", project=project)
    assert check_workers(targets, 4, 2.0).state == DOWN  # no heartbeat at all
    client = redis.Redis.from_url(redis_url)
    beat(client, project, "host-1", [0, 1])
    half = check_workers(targets, 4, 2.0)
    assert half.state == DOWN and half.details["unassigned_partitions"] == [2, 3]
    beat(client, project, "host-2", [2, 3])
    both = check_workers(targets, 4, 2.0)
    assert both.state == UP and [w["id"] for w in both.details["workers"]] == ["host-1", "host-2"]
    blind = check_workers(Targets("k", redis_url, "g", project, worker_metrics=("127.0.0.1:1",)), 4, 2.0)
    assert blind.state == DEGRADED and "metrics down" in blind.summary
    client.close()


def test_each_worker_of_a_stack_file_is_named_with_its_heartbeat(redis_url: str, project: str) -> None:
    """`streamrec up` lists its workers by name and pid; one without a heartbeat (being restarted) degrades."""
    data = {"kafka": "k:1", "redis": redis_url, "grpc": "g:1,g:2", "project": project}
    data["workers"] = [
        {"name": "worker", "pid": 42, "metrics": "127.0.0.1:1", "restarts": 0},
        {"name": "worker-1", "pid": 43, "metrics": "", "restarts": 2},
    ]
    data["scorers"] = [{"name": "scorer", "pid": 7, "metrics": "m:1", "address": "g:1"}]
    data["redis_cluster_nodes"] = ["127.0.0.1:7001"]
    targets = targets_from_stack(data)
    assert targets.workers[1] == Member("worker-1", 43, "", restarts=2)
    assert targets.scorers == (Member("scorer", 7, "m:1", "g:1"),)
    assert targets.redis_cluster_nodes == ("127.0.0.1:7001",)
    client = redis.Redis.from_url(redis_url)
    beat(client, project, "host-1", [0, 1, 2, 3])  # pid 42: the stack's "worker"
    client.close()
    workers = check_workers(targets, 4, 2.0)
    assert workers.state == DEGRADED and "no heartbeat from worker-1 (pid 43)" in workers.summary
    named = {m["name"]: m for m in workers.details["members"]}
    assert named["worker"]["heartbeat"] == "host-1" and named["worker"]["partitions"] == [0, 1, 2, 3]
    assert named["worker-1"]["heartbeat"] is None and named["worker-1"]["restarts"] == 2
    table = render_table(StackStatus([workers], BrokerReport(ok=True, group="g"), 0))
    assert "worker-1: pid 43, no heartbeat" in table and "worker: pid 42, partitions [0, 1, 2, 3]" in table


def test_the_members_are_read_again_from_the_stack_file(tmp_path: Path) -> None:
    """The live page keeps its Targets while `up` restarts a worker and rewrites stack.json with the new pid."""
    data: dict = {"kafka": "k:1", "redis": "redis://r:2/0", "grpc": "g:1", "state_dir": str(tmp_path)}
    data["workers"] = [{"name": "worker", "pid": 42, "metrics": "m:1"}]
    (tmp_path / "stack.json").write_text(json.dumps(data))
    targets = read_stack_file(tmp_path)
    data["workers"][0] |= {"pid": 43, "restarts": 1}
    (tmp_path / "stack.json").write_text(json.dumps(data))
    assert with_current_members(targets).workers == (Member("worker", 43, "m:1", restarts=1),)
    (tmp_path / "stack.json").unlink()  # the stack stopped: what was known stays
    assert with_current_members(targets) == targets


def test_a_shard_is_reached_with_the_url_s_scheme_and_credentials() -> None:
    assert shard_url("rediss://app:pw@seed:7000/0", "10.0.0.2:7001") == "rediss://app:pw@10.0.0.2:7001/0"
    assert shard_url("redis://seed:7000/0", "h:7002") == "redis://h:7002/0"


def test_redis_check(redis_url: str) -> None:
    up = check_redis(redis_url, 2.0)
    assert up.state == UP and up.details["used_memory"] > 0
    assert check_redis("redis://127.0.0.1:1/0", 0.5).state == DOWN


def test_secrets_stay_out_of_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .streamrec/stack/stack.json here: the environment is used
    monkeypatch.setenv("STREAMREC_REDIS_URL", "redis://app:hunter2@db:6379/0")
    monkeypatch.setenv("STREAMREC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", "kafka-secret")
    monkeypatch.setenv("STREAMREC_OBSERVE_SCORER_TOKEN", "token-secret")
    targets = resolve_targets(parse())
    assert targets.redis == "redis://app:hunter2@db:6379/0"  # used as is to connect
    assert redact(targets.redis) == "redis://app:***@db:6379/0"
    assert targets.credentials.kafka_config()["sasl.password"] == "kafka-secret"
    assert targets.credentials.grpc_metadata() == (("authorization", "Bearer token-secret"),)
    shown = repr(targets)
    assert not any(secret in shown for secret in ("hunter2", "kafka-secret", "token-secret"))
