"""kill -9 of the scorer under page-view load: clients that retry lose no page view, and the time from the kill
to the first answer of the restarted scorer (same port) is measured and printed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis

from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.stack import start_scorer
from streamrec.features.session_store import SessionState, session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from tests.faults.support import start_services

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CLIENTS = 6
PAGE_VIEW_BUDGET_S = 60.0  # a page view is lost only if no answer came within this
ATTEMPT_TIMEOUT_S = 1.0
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}

# gRPC's own retries (transparent, for calls that never reached a server) plus a short reconnect backoff: without
# it a channel that saw its server die waits up to 120 s before trying the new one
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "streamrec.v1.Recommender"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
CHANNEL_OPTIONS = [
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


@dataclass
class Load:
    """What the clients saw: answered and lost page views, and when each successful attempt started and ended."""

    answered: int = 0
    lost: list[str] = field(default_factory=list)
    retried: int = 0
    successes: list[tuple[float, float]] = field(default_factory=list)
    in_flight: int = 0


async def page_view(stub: recommender_pb2_grpc.RecommenderStub, request: pb.RecommendRequest, load: Load) -> bool:
    """One page view with a client-side retry loop on top of gRPC's: retry retryable codes until the budget."""
    deadline = time.monotonic() + PAGE_VIEW_BUDGET_S
    delay = 0.05
    while True:
        started = time.monotonic()
        try:
            await stub.Recommend(request, timeout=min(ATTEMPT_TIMEOUT_S, max(deadline - started, 0.01)))
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() + delay > deadline:
                load.lost.append(f"{request.session_id}: {exc.code().name} {exc.details()}")
                return False
            load.retried += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        load.successes.append((started, time.monotonic()))
        load.answered += 1
        return True


async def client(address: str, n: int, stop: asyncio.Event, load: Load) -> None:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        views = 0
        while not stop.is_set():
            request = pb.RecommendRequest(session_id=f"s{(n * 7 + views) % 20}", k=10)
            load.in_flight += 1
            try:
                await page_view(stub, request, load)
            finally:
                load.in_flight -= 1
            views += 1
            await asyncio.sleep(0.01)  # a page view per client every ~10 ms: load, not a saturation test


def seed_sessions(redis_url: str, project: str, items: list[str]) -> None:
    """Sessions s0..s19 with history, so answers are scored by the model, not only popularity."""
    client_ = redis.Redis.from_url(redis_url)
    now = int(time.time() * 1000)
    for n in range(20):
        state = SessionState(items=items[n : n + 3], last_event_id=f"e{n}", updated_ms=now)
        client_.set(session_key(project, f"s{n}"), state.to_json())
    client_.close()


async def test_kill_9_scorer_under_load_loses_no_page_view(tmp_path: Path, trained_registry: Path) -> None:
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        services = start_services(stack, trained_registry)
        address = services.env["STREAMREC_SCORER_ADDRESS"]
        known = json.loads(next(trained_registry.glob("v*/items.json")).read_text())[1:]
        seed_sessions(services.redis_url, services.project, known)

        load, stop = Load(), asyncio.Event()
        clients = [asyncio.create_task(client(address, n, stop, load)) for n in range(CLIENTS)]
        await asyncio.sleep(2.0)
        answered_before = load.answered
        assert answered_before > 20 and not load.lost, load.lost[:5]

        scorer = stack.services["scorer"]
        killed_at = time.monotonic()
        os.kill(scorer.process.pid, signal.SIGKILL)  # no drain, no goodbye to the clients
        in_flight_at_kill = load.in_flight
        scorer.process.wait()
        stack.stop_service("scorer")  # forget the dead one; its port is free again
        await asyncio.to_thread(start_scorer, stack, services.env, address)
        healthy_at = time.monotonic()

        while not any(start >= killed_at for start, _ in load.successes):
            assert time.monotonic() - killed_at < PAGE_VIEW_BUDGET_S, "no answer after the restart"
            await asyncio.sleep(0.01)
        answered_at = min(end for start, end in load.successes if start >= killed_at)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*clients)

    figures = {
        "figure": "scorer_kill_9_recovery",
        "kill_to_healthy_s": round(healthy_at - killed_at, 2),
        "kill_to_first_answer_s": round(answered_at - killed_at, 2),
        "page_views_answered": load.answered,
        "page_views_lost": len(load.lost),
        "in_flight_at_kill": in_flight_at_kill,
        "client_retries": load.retried,
    }
    print(json.dumps(figures))
    assert len(load.lost) <= in_flight_at_kill, load.lost[:5]
    assert load.answered > answered_before + 20  # the restarted scorer carried the load again
