"""`streamrec up --detach` starts the stack in the background; `streamrec down` leaves none of it running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from streamrec.devstack.stack import StackAddresses
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc

pytestmark = pytest.mark.integration


def streamrec(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_detached_stack_serves_and_stops_completely(trained_registry: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    shutil.copytree(trained_registry, state_dir / "registry")  # skip training: the model is given
    started = streamrec("up", "--detach", "--state-dir", str(state_dir))
    assert started.returncode == 0, started.stderr + started.stdout
    addresses = StackAddresses.read(state_dir)
    pids = [addresses.pid, *addresses.processes.values()]
    assert set(addresses.processes) >= {"broker", "redis", "scorer", "worker"}
    try:
        with grpc.insecure_channel(addresses.grpc) as channel:
            reply = recommender_pb2_grpc.RecommenderStub(channel).Recommend(
                pb.RecommendRequest(session_id="someone", k=5), timeout=10
            )
        assert len(reply.items) == 5 and reply.model_version
    finally:
        stopped = streamrec("down", "--state-dir", str(state_dir), timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if alive(p)] == []
    assert not (state_dir / "stack.json").exists()


def test_children_die_with_a_killed_supervisor(trained_registry: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    shutil.copytree(trained_registry, state_dir / "registry")
    assert streamrec("up", "--detach", "--state-dir", str(state_dir)).returncode == 0
    addresses = StackAddresses.read(state_dir)
    os.kill(addresses.pid, 9)  # no chance to clean up: PR_SET_PDEATHSIG must take the children along
    deadline = time.monotonic() + 20
    children = list(addresses.processes.values())
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in children if alive(p)] == []
