"""`streamrec up --detach` runs like a small deployment: it names every process, restarts a worker or scorer
killed with -9 without losing an event, keeps its data across `down` and `up` (`--fresh` starts empty), and
`streamrec down` (or a killed supervisor) leaves none of it running.

One stack (2 scorers) serves the module; the last test stops it, starts it again, and again with --fresh.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamrec.artifact import list_versions
from streamrec.channels import insecure_scorer_channel, scorer_addresses
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.probe import click, wait_for_refresh
from streamrec.devstack.stack import StackAddresses
from streamrec.features.session_store import SessionState, session_key
from streamrec.observe.config import WORKER_APP_ID
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis import sync_client
from streamrec.stream.producer import EventProducer

pytestmark = pytest.mark.integration
APPLIED_TIMEOUT_S = 90.0  # a killed worker's partitions move once the broker drops its session (6 s here)


def streamrec(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def up(state_dir: Path, *flags: str) -> StackAddresses:
    started = streamrec("up", "--detach", "--state-dir", str(state_dir), *flags)
    assert started.returncode == 0, started.stderr + started.stdout
    return StackAddresses.read(state_dir)


def down(state_dir: Path) -> None:
    stopped = streamrec("down", "--state-dir", str(state_dir), timeout=90)
    assert stopped.returncode == 0, stopped.stderr


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def all_gone(pids: list[int]) -> bool:
    return wait_until(lambda: not any(alive(p) for p in pids), 20)


@pytest.fixture(scope="module")
def state_dir(trained_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("up") / "stack"
    shutil.copytree(trained_registry, state_dir / "registry")  # skip training: the model is given
    up(state_dir, "--scorers", "2")
    try:
        yield state_dir
    finally:
        streamrec("down", "--state-dir", str(state_dir), timeout=90)


def send_clicks(addresses: StackAddresses, session_id: str, items: list[str]) -> str:
    """Produce a click per item for `session_id`; returns the last event's id."""
    producer = EventProducer(addresses.kafka, EVENTS_TOPIC)
    events = [click(session_id, item) for item in items]
    for event in events:
        producer.send(session_id, event.to_bytes())
    producer.flush(10)
    return events[-1].event_id


def applied_state(addresses: StackAddresses, session_id: str, event_id: str) -> SessionState:
    """The session's state once the worker has applied `event_id` (and refreshed its recommendations)."""
    client = sync_client(addresses.redis)
    try:
        wait_for_refresh(client, addresses.project, session_id, event_id, APPLIED_TIMEOUT_S)
        return stored_state(addresses, session_id)  # type: ignore[return-value]
    finally:
        client.close()


def stored_state(addresses: StackAddresses, session_id: str) -> SessionState | None:
    client = sync_client(addresses.redis)
    try:
        raw = client.get(session_key(addresses.project, session_id))
    finally:
        client.close()
    return None if raw is None else SessionState.from_json(raw)  # type: ignore[arg-type]


def topic_offsets(addresses: StackAddresses) -> tuple[int, int]:
    """(events in the topic, offsets the workers' group committed), each summed over the partitions."""
    group = f"{addresses.project}.{WORKER_APP_ID}"
    consumer = Consumer({"bootstrap.servers": addresses.kafka, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(EVENTS_TOPIC, timeout=10).topics[EVENTS_TOPIC].partitions
        tps = [TopicPartition(EVENTS_TOPIC, p) for p in partitions]
        ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
        committed = sum(max(0, tp.offset) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()
    return ends, committed


def restarted(state_dir: Path, name: str, old_pid: int) -> bool:
    member = next(m for m in StackAddresses.read(state_dir).members() if m.name == name)
    return member.pid != old_pid and member.restarts >= 1 and alive(member.pid)


def test_stack_file_and_status_name_every_worker_and_scorer(state_dir: Path) -> None:
    addresses = StackAddresses.read(state_dir)
    assert [w.name for w in addresses.workers] == ["worker"]
    assert [s.name for s in addresses.scorers] == ["scorer", "scorer-1"]
    assert scorer_addresses(addresses.grpc) == [s.address for s in addresses.scorers]
    for member in addresses.members():
        assert addresses.processes[member.name] == member.pid and alive(member.pid)
        assert addresses.metrics[member.name] == member.metrics
    assert addresses.redis_cluster_nodes == []
    # status is eventually consistent: a worker shows once its first heartbeat (1 s period) has landed
    report: dict = {}

    def reported_up() -> bool:
        nonlocal report
        done = streamrec("status", "--json", "--state-dir", str(state_dir), timeout=60)
        report = json.loads(done.stdout)
        return done.returncode == 0 and report["components"]["workers"]["state"] == "up"

    assert wait_until(reported_up, 30), report
    components = report["components"]
    for scorer in addresses.scorers:
        assert components[scorer.name]["pid"] == scorer.pid and components[scorer.name]["health"] == "SERVING"
        assert components[scorer.name]["metrics"] == {scorer.metrics: True}
    [worker] = components["workers"]["members"]
    assert worker["name"] == "worker" and worker["pid"] == addresses.workers[0].pid and worker["heartbeat"]


def test_a_killed_worker_is_restarted_and_no_event_is_lost(state_dir: Path) -> None:
    addresses = StackAddresses.read(state_dir)
    worker = addresses.workers[0]
    os.kill(worker.pid, signal.SIGKILL)
    last = send_clicks(addresses, "after-kill", ["i1", "i2", "i3"])  # produced while no worker runs
    assert wait_until(lambda: restarted(state_dir, "worker", worker.pid), 30), (state_dir / "up.log").read_text()
    state = applied_state(addresses, "after-kill", last)
    assert state.items == ["i1", "i2", "i3"] and state.events == 3
    log = (state_dir / "up.log").read_text()
    assert f"worker (pid {worker.pid}) was killed by SIGKILL; restart 1 in 0.5s" in log
    again = send_clicks(addresses, "after-kill", ["i4"])  # the restarted worker goes on with the session
    assert applied_state(addresses, "after-kill", again).items == ["i1", "i2", "i3", "i4"]
    new_pid = StackAddresses.read(state_dir).workers[0].pid

    def shown_restarted(document: dict) -> bool:
        [member] = document["components"]["workers"]["members"]
        return bool(member["pid"] == new_pid and member["restarts"] == 1 and member["heartbeat"])

    def status_shows_it() -> bool:
        done = streamrec("status", "--json", "--state-dir", str(state_dir), timeout=60)
        return shown_restarted(json.loads(done.stdout))

    def live_page_shows_it() -> bool:  # its Targets were made at the start: it reads the new pid from stack.json
        with urllib.request.urlopen(f"{addresses.web}/api/status", timeout=30) as reply:
            return shown_restarted(json.loads(reply.read()))

    assert wait_until(status_shows_it, 30) and wait_until(live_page_shows_it, 30)


def test_recommend_through_the_scorer_list_survives_a_killed_scorer(state_dir: Path) -> None:
    addresses = StackAddresses.read(state_dir)
    scorer = addresses.scorers[1]
    with insecure_scorer_channel(addresses.grpc) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)

        def answers() -> bool:
            reply = stub.Recommend(pb.RecommendRequest(session_id="someone", k=5), timeout=10)
            return len(reply.items) == 5 and bool(reply.model_version)

        assert answers()
        os.kill(scorer.pid, signal.SIGKILL)
        assert all(answers() for _ in range(20))  # the other scorer answers meanwhile
        assert wait_until(lambda: restarted(state_dir, "scorer-1", scorer.pid), 30)
        assert all(answers() for _ in range(20))
    assert f"scorer-1 (pid {scorer.pid}) was killed by SIGKILL; restart 1" in (state_dir / "up.log").read_text()


def test_up_after_down_resumes_the_data_and_fresh_starts_empty(state_dir: Path) -> None:
    addresses = StackAddresses.read(state_dir)
    served = list_versions(state_dir / "registry")
    applied_state(addresses, "kept", send_clicks(addresses, "kept", ["k1", "k2"]))
    ends = topic_offsets(addresses)[0]
    # the worker commits what it applied every few seconds: wait until all of it is committed
    assert wait_until(lambda: topic_offsets(addresses)[1] == ends, 60), topic_offsets(addresses)
    pids = [addresses.pid, *addresses.processes.values()]
    down(state_dir)
    assert all_gone(pids), [p for p in pids if alive(p)]
    assert not (state_dir / "stack.json").exists()

    resumed = up(state_dir)  # other ports, the same data
    state = stored_state(resumed, "kept")
    assert state is not None and state.items == ["k1", "k2"] and state.events == 2
    resumed_ends, resumed_committed = topic_offsets(resumed)
    assert resumed_ends > ends and resumed_committed >= ends  # + the start's probe; the offsets kept
    state = applied_state(resumed, "kept", send_clicks(resumed, "kept", ["k3"]))
    assert state.items == ["k1", "k2", "k3"] and state.events == 3  # continued, nothing applied twice
    down(state_dir)

    fresh = up(state_dir, "--fresh")
    assert list_versions(state_dir / "registry") == served  # the model registry is no data to wipe
    assert stored_state(fresh, "kept") is None and stored_state(fresh, "after-kill") is None
    assert topic_offsets(fresh)[0] < ends  # only this start's probe
    os.kill(fresh.pid, signal.SIGKILL)  # no chance to clean up: PR_SET_PDEATHSIG must take the children along
    children = list(fresh.processes.values())
    assert all_gone(children), [p for p in children if alive(p)]
