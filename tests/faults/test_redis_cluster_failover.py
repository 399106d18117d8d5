"""A Redis Cluster primary killed with -9 mid-replay: its replica is promoted, the scorer answers the sessions of
the lost slots from popularity meanwhile (fallback=true, counted), the worker retries its batches, and once the
cluster has recovered every session holds exactly the events sent and every item counter equals the truth."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
import pytest
import redis

from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.features.session_store import session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis.cluster import slot_of
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

REPLAY_RATE = 2500.0  # events/s: the replay is still running when the primary dies
FALLBACK_METRIC = "streamrec_scorer_fallbacks_total"


def slot_owners(address: str) -> dict[int, str]:
    """The primary of every slot, as the node at `address` sees the cluster."""
    owners = {}
    for start, end, primary, *_ in redis.Redis.from_url(f"redis://{address}").execute_command("CLUSTER", "SLOTS"):
        for slot in range(start, end + 1):
            owners[slot] = f"{primary[0].decode()}:{primary[1]}"
    return owners


def test_primary_killed_mid_replay_fails_over_and_loses_nothing(tmp_path: Path, trained_registry: Path) -> None:
    scorer_metrics, worker_metrics = free_port(), free_port()
    events = recent_events(n_sessions=2500, session_seed=61)
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)

    with LocalStack(state_dir=tmp_path / "stack") as stack:
        services = start_services(stack, trained_registry, redis_cluster=True, scorer_metrics_port=scorer_metrics)
        primaries = services.redis_url.removeprefix("redis+cluster://").removesuffix("/0").split(",")
        victim, survivor = primaries[0], primaries[1]
        owners = slot_owners(survivor)
        services.env["STREAMREC_STREAM_METRICS_PORT"] = str(worker_metrics)
        worker = services.start_worker("worker")
        replayer = ReplayThread(events, services.kafka, rate=REPLAY_RATE).start()
        wait_applied(services, items, len(events) // 3, timeout_s=120, watch=(worker,))
        # a session the scorer must read from the victim's slots
        on_victim = next(s for s in truth_sessions if owners[slot_of(session_key(services.project, s))] == victim)
        channel = grpc.insecure_channel(services.env["STREAMREC_SCORER_ADDRESS"])
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        fallbacks_before = metric(scrape(scorer_metrics), FALLBACK_METRIC, {"cause": "redis_unavailable"})

        node = stack.services[f"redis-{victim.rsplit(':', 1)[1]}"]
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait()
        during = stub.Recommend(pb.RecommendRequest(session_id=on_victim, k=10), timeout=5)
        fallbacks_during = metric(scrape(scorer_metrics), FALLBACK_METRIC, {"cause": "redis_unavailable"})

        promoted = wait_promoted(survivor, slot_of(session_key(services.project, on_victim)), victim, timeout_s=30)
        result = replayer.join()
        settled = wait_until_settled(services, items, len(events), timeout_s=240, watch=(worker,))
        retries = metric(scrape(worker_metrics), "streamrec_worker_batch_retries_total")
        client = services.client()
        final_items = item_totals(client, services.project, items)
        final_sessions = session_counts(client, services.project, sorted(truth_sessions))
        after = stub.Recommend(pb.RecommendRequest(session_id=on_victim, k=10), timeout=5)
        channel.close()

    assert promoted not in primaries  # the victim's replica took its slots over
    assert during.fallback and during.source == "popularity" and len(during.items) == 10
    assert fallbacks_during > fallbacks_before
    assert not after.fallback
    assert retries > 0  # the worker held the batches that met the dead primary, rather than skipping them
    assert result.failed == 0, result.errors
    assert settled == len(events)
    assert final_items == truth_items  # every event counted once: none lost with the primary, none twice
    assert final_sessions == truth_sessions


def wait_promoted(survivor: str, slot: int, victim: str, timeout_s: float) -> str:
    """The node that serves `slot` once the cluster has failed the victim over."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owner = slot_owners(survivor)[slot]
        if owner != victim:
            return owner
        time.sleep(0.2)
    raise AssertionError(f"no replica took over from {victim} within {timeout_s:.0f}s")
