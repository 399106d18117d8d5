"""`streamrec serve --processes N` and the port rules, with real scorer processes on real sockets.

A group answers on one port from N processes and shows them in one /metrics; a child killed with SIGKILL is
replaced; a second scorer, or a second group, on a port in use exits with a clear error instead of taking half
of the connections.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.devstack.stack import StackOptions, scorer_ready, service_env
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc

pytestmark = pytest.mark.integration

CHANNELS = 24  # separate connections: SO_REUSEPORT spreads connections, not calls


@dataclass
class Group:
    service: Service
    address: str
    metrics_port: int
    env: dict[str, str]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    def serving_pids(self) -> set[int]:
        """The pids whose model gauge is 1: one per live child (the `pid` label of a multiprocess gauge)."""
        samples = re.findall(r"^streamrec_scorer_model_info\{([^}]*)\} (\S+)$", self.metrics(), flags=re.MULTILINE)
        return {int(re.search(r'pid="(\d+)"', labels).group(1)) for labels, value in samples if float(value) == 1}  # type: ignore[union-attr]

    def recommends_ok(self) -> int:
        pattern = r'^streamrec_scorer_requests_total\{(?=[^}]*rpc="Recommend")(?=[^}]*code="OK")[^}]*\} (\S+)$'
        match = re.search(pattern, self.metrics(), flags=re.MULTILINE)
        return int(float(match.group(1))) if match else 0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(state_dir=tmp_path / "stack") as local:
        yield local


def scorer_env(stack: LocalStack, registry: Path, address: str) -> dict[str, str]:
    redis_url = stack.services["redis"].address if "redis" in stack.services else stack.start_redis()
    options = StackOptions(project=f"t{uuid.uuid4().hex[:8]}")
    return service_env("127.0.0.1:9", redis_url, address, registry, options)


def start_group(stack: LocalStack, registry: Path, processes: int) -> Group:
    port, metrics_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    env = {**scorer_env(stack, registry, address), "STREAMREC_SERVING_METRICS_PORT": str(metrics_port)}
    argv = ["serve", "--port", str(port), "--processes", str(processes)]
    service = stack.python_module("scorer-group", argv, address, lambda: scorer_ready(address), env=env)
    group = Group(service, address, metrics_port, env)
    wait_for(lambda: len(group.serving_pids()) == processes, "every child serving")
    return group


def wait_for(condition: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def recommend_on_new_channels(address: str, channels: int) -> int:
    """One Recommend on each of `channels` new connections; the number answered OK."""
    answered = 0
    for n in range(channels):
        # a local subchannel pool: a new TCP connection per channel, not one shared by every channel
        with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            stub.Recommend(pb.RecommendRequest(session_id=f"s{n}", k=5), timeout=10)
            answered += 1
    return answered


def run_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_processes_share_one_port_and_one_metrics_view(stack: LocalStack, trained_registry: Path) -> None:
    group = start_group(stack, trained_registry, processes=2)
    assert len(group.serving_pids()) == 2

    assert recommend_on_new_channels(group.address, CHANNELS) == CHANNELS
    assert group.recommends_ok() == CHANNELS  # both children's counters, summed by the parent

    victim = min(group.serving_pids())
    survivor = max(group.serving_pids())
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in group.serving_pids() and len(group.serving_pids()) == 2, "a replacement child")
    assert survivor in group.serving_pids()
    assert recommend_on_new_channels(group.address, CHANNELS) == CHANNELS
    assert group.recommends_ok() == 2 * CHANNELS  # the dead child's count is kept in the sum

    children = group.serving_pids()
    group.service.process.send_signal(signal.SIGTERM)
    assert group.service.process.wait(60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


def test_a_scorer_on_a_port_in_use_exits_with_a_clear_error(stack: LocalStack, trained_registry: Path) -> None:
    group = start_group(stack, trained_registry, processes=2)
    port = group.address.rsplit(":", 1)[1]

    same_metrics_port = run_serve(group.env, "--port", str(free_port()))
    assert same_metrics_port.returncode == 1
    assert (
        f"cannot serve /metrics on 127.0.0.1:{group.metrics_port}: Address already in use" in same_metrics_port.stderr
    )

    env = {**group.env, "STREAMREC_SERVING_METRICS_PORT": "0"}
    lone = run_serve(env, "--port", port)
    assert lone.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in lone.stderr

    second_group = run_serve(env, "--port", port, "--processes", "2")
    assert second_group.returncode == 1
    assert "the port is in use" in second_group.stderr

    assert recommend_on_new_channels(group.address, 4) == 4  # the group still has its port to itself
    assert group.recommends_ok() == 4


def test_a_child_that_fails_to_start_ends_the_group(stack: LocalStack, tmp_path: Path) -> None:
    port = free_port()
    env = scorer_env(stack, tmp_path / "no-registry", f"127.0.0.1:{port}")
    failed = run_serve(env, "--port", str(port), "--processes", "2")
    assert failed.returncode == 1
    assert "while starting: stopping" in failed.stderr
