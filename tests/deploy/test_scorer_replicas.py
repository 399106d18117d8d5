"""Two real scorer processes behind one client channel: gRPC round_robin spreads the calls, and when one replica
is killed with SIGKILL the client keeps getting answers (retries of UNAVAILABLE move them to the survivor)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from streamrec.channels import scorer_channel_options
from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.devstack.stack import StackOptions, service_env, start_scorer
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc

pytestmark = pytest.mark.integration

CALLERS = 4  # concurrent client threads: at most this many calls are in flight when a replica dies
CALL_TIMEOUT_S = 2.0


@dataclass
class Replica:
    service: Service
    address: str
    metrics_port: int

    def recommends_served(self) -> int:
        """Recommend calls this replica answered OK, from its own Prometheus counter."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        pattern = r'^streamrec_scorer_requests_total\{(?=[^}]*rpc="Recommend")(?=[^}]*code="OK")[^}]*\} (\S+)$'
        match = re.search(pattern, text, flags=re.MULTILINE)
        return int(float(match.group(1))) if match else 0


@dataclass
class Outcomes:
    codes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, code: str) -> None:
        with self.lock:
            self.codes[code] += 1

    @property
    def failures(self) -> int:
        return sum(n for code, n in self.codes.items() if code != "OK")


@pytest.fixture
def replicas(tmp_path: Path, trained_registry: Path) -> Iterator[list[Replica]]:
    options = StackOptions(project=f"t{uuid.uuid4().hex[:8]}")
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        redis_url = stack.start_redis()
        started = []
        for name in ("scorer-a", "scorer-b"):
            port, metrics_port = free_port(), free_port()
            address = f"127.0.0.1:{port}"
            env = {
                **service_env("127.0.0.1:9", redis_url, address, trained_registry, options),
                "STREAMREC_SERVING_METRICS_PORT": str(metrics_port),
            }
            service = start_scorer(stack, env, address, name=name)
            started.append(Replica(service, address, metrics_port))
        yield started


def recommend(stub: recommender_pb2_grpc.RecommenderStub, outcomes: Outcomes) -> None:
    request = pb.RecommendRequest(session_id=f"s-{uuid.uuid4().hex[:8]}", k=5)
    try:
        stub.Recommend(request, timeout=CALL_TIMEOUT_S)
        outcomes.add("OK")
    except grpc.RpcError as exc:  # the client edge: count by status code
        outcomes.add(exc.code().name)


def run_callers(
    stub: recommender_pb2_grpc.RecommenderStub, outcomes: Outcomes, stop: threading.Event
) -> list[threading.Thread]:
    def loop() -> None:
        while not stop.is_set():
            recommend(stub, outcomes)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    return threads


def test_round_robin_spreads_calls_and_survives_a_replica_killed_mid_way(replicas: list[Replica]) -> None:
    a, b = replicas
    target = "ipv4:" + ",".join(r.address for r in replicas)
    # the policy every client of several scorers uses (streamrec/channels.py): round_robin, retries of UNAVAILABLE
    with grpc.insecure_channel(target, options=scorer_channel_options()) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = recommender_pb2_grpc.RecommenderStub(channel)

        warm = Outcomes()
        for _ in range(200):
            recommend(stub, warm)
        assert warm.codes == Counter({"OK": 200})
        served = (a.recommends_served(), b.recommends_served())
        assert sum(served) == 200 and min(served) >= 60, f"calls were not spread: {served}"

        during, stop = Outcomes(), threading.Event()
        threads = run_callers(stub, during, stop)
        time.sleep(1.0)
        before_kill = sum(during.codes.values())
        os.kill(a.service.process.pid, signal.SIGKILL)
        a.service.process.wait(timeout=10)
        time.sleep(2.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=CALL_TIMEOUT_S * 3)
        answered_after_kill = during.codes["OK"] - before_kill
        assert answered_after_kill > 0, f"no answers after the kill: {during.codes}"
        assert during.failures <= CALLERS, f"more failures than calls in flight at the kill: {during.codes}"

        settled, b_before = Outcomes(), b.recommends_served()
        for _ in range(100):
            recommend(stub, settled)
        assert settled.codes == Counter({"OK": 100})
        assert b.recommends_served() - b_before == 100  # the survivor answers everything now
