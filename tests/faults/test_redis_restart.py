"""Redis (append-only file on) stopped mid-replay and started again on the same port and data directory: while
it is down the scorer answers from popularity and says so; afterwards session state is back, the worker resumes,
and every counter equals the ground truth of the replayed events."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
import redis

from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.features.session_store import session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from tests.faults.support import (
    ReplayThread,
    metric,
    recent_events,
    scrape,
    start_services,
    wait_applied,
    wait_until_settled,
)
from tests.integration.harness import ground_truth, item_totals, session_counts

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 4.0
REPLAY_RATE = 2500.0  # events/s: the replay is still running when Redis goes down
FALLBACK_METRIC = "streamrec_scorer_fallbacks_total"


def finished_sessions(events: list[Any], before_index: int) -> list[str]:
    """Sessions whose every event comes before `before_index` in the replay order."""
    last: dict[str, int] = {}
    for n, event in enumerate(events):
        last[event.session_id] = n
    return sorted(sid for sid, n in last.items() if n < before_index)


def read_sessions(client: redis.Redis, project: str, sessions: list[str]) -> list[Any]:
    return cast(list[Any], client.mget([session_key(project, s) for s in sessions]))


def wait_final(client: redis.Redis, project: str, truth: Counter[str], sessions: list[str], timeout_s: float) -> bool:
    """Poll until every one of `sessions` holds all its events in Redis; whether they all did in time. Any state
    is not enough: a session's last event may still be on its way."""
    expected = Counter({sid: truth[sid] for sid in sessions})
    deadline = time.monotonic() + timeout_s
    while session_counts(client, project, sessions) != expected:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def test_redis_restart_keeps_state_scorer_degrades_and_worker_loses_nothing(
    tmp_path: Path, trained_registry: Path
) -> None:
    scorer_metrics, worker_metrics = free_port(), free_port()
    events = recent_events(n_sessions=2500, session_seed=41)
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)
    early = finished_sessions(events, before_index=len(events) // 5)

    with LocalStack(state_dir=tmp_path / "stack") as stack:
        services = start_services(stack, trained_registry, redis_appendonly=True, scorer_metrics_port=scorer_metrics)
        services.env["STREAMREC_STREAM_METRICS_PORT"] = str(worker_metrics)
        worker = services.start_worker("worker")
        replayer = ReplayThread(events, services.kafka, rate=REPLAY_RATE).start()
        wait_applied(services, items, len(events) * 2 // 5, timeout_s=120, watch=(worker,))
        client = services.client()
        # Partitions advance unevenly, so a total applied count does not yet mean every early session is written.
        assert wait_final(client, services.project, truth_sessions, early, timeout_s=60), (
            "sessions finished early in the replay are written whole"
        )
        before = read_sessions(client, services.project, early)
        channel = grpc.insecure_channel(services.env["STREAMREC_SCORER_ADDRESS"])
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        fallbacks_before = metric(scrape(scorer_metrics), FALLBACK_METRIC, {"cause": "redis_unavailable"})

        redis_port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
        stack.stop_service("redis")  # SIGTERM: Redis writes its append-only file and exits
        down_at = time.monotonic()
        answers = []
        while time.monotonic() - down_at < OUTAGE_S:
            answers.append(stub.Recommend(pb.RecommendRequest(session_id=early[0], k=10), timeout=5))
            time.sleep(0.1)
        info_down = stub.Info(pb.InfoRequest(), timeout=5)
        fallbacks_during = metric(scrape(scorer_metrics), FALLBACK_METRIC, {"cause": "redis_unavailable"})
        assert worker.alive(), f"the worker died while Redis was down:\n{worker.log_tail(40)}"

        stack.start_redis(port=redis_port, appendonly=True)  # same port, so the same data directory
        up_at = time.monotonic()
        after = read_sessions(client, services.project, early)
        recovered = wait_model_answer(stub, early[0], timeout_s=10)
        recovered_s = time.monotonic() - up_at
        info_up = wait_redis_ok(stub, timeout_s=10)
        result = replayer.join()
        settled = wait_until_settled(services, items, len(events), timeout_s=180, watch=(worker,))
        retries = metric(scrape(worker_metrics), "streamrec_worker_batch_retries_total")
        final_items = item_totals(client, services.project, items)
        final_sessions = session_counts(client, services.project, sorted(truth_sessions))
        channel.close()

    print(
        json.dumps(
            {
                "figure": "redis_restart",
                "outage_s": round(up_at - down_at, 2),
                "page_views_during_outage": len(answers),
                "restart_to_model_answer_s": round(recovered_s, 2),
                "worker_batch_retries": retries,
                "applied": settled,
                "expected": len(events),
            }
        )
    )
    assert all(a.fallback and a.source == "popularity" and len(a.items) == 10 for a in answers)
    assert not info_down.redis_ok
    assert fallbacks_during - fallbacks_before == len(answers)  # each degraded answer counted, once
    assert after == before, "the append-only file brought every session back as it was"
    assert not recovered.fallback and recovered.source in ("refreshed", "inline")
    assert info_up.redis_ok
    assert retries > 0  # the worker held its batches while Redis was down, rather than skipping them
    assert result.failed == 0, result.errors
    assert settled == len(events)
    assert final_items == truth_items
    assert final_sessions == truth_sessions


def wait_model_answer(
    stub: recommender_pb2_grpc.RecommenderStub, session_id: str, timeout_s: float
) -> pb.RecommendResponse:
    """The scorer's Redis client fails fast for a moment after an outage: poll until answers use the session."""
    deadline = time.monotonic() + timeout_s
    reply = stub.Recommend(pb.RecommendRequest(session_id=session_id, k=10), timeout=5)
    while reply.fallback and time.monotonic() < deadline:
        time.sleep(0.05)
        reply = stub.Recommend(pb.RecommendRequest(session_id=session_id, k=10), timeout=5)
    return reply


def wait_redis_ok(stub: recommender_pb2_grpc.RecommenderStub, timeout_s: float) -> pb.InfoResponse:
    """Info.redis_ok also reflects the trending refresh, which runs once a second: poll until it turns."""
    deadline = time.monotonic() + timeout_s
    info = stub.Info(pb.InfoRequest(), timeout=5)
    while not info.redis_ok and time.monotonic() < deadline:
        time.sleep(0.1)
        info = stub.Info(pb.InfoRequest(), timeout=5)
    return info
