"""The local stack on a Redis Cluster with two workers and two scorers: a replay lands every session, exactly,
every primary holds some of them, Recommend answers through the scorer list, and status shows each node."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from streamrec.channels import scorer_channel_options
from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.stack import StackOptions, start_stack
from streamrec.features.session_store import session_key
from streamrec.observe.checks import collect
from streamrec.observe.config import targets_from_stack
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.stream.adapters import scorer_target
from tests.faults.support import ReplayThread, recent_events, wait_until_settled
from tests.integration.harness import Services, ground_truth, item_totals, session_counts

pytestmark = pytest.mark.integration


def test_two_workers_and_two_scorers_on_a_cluster_land_every_session(tmp_path: Path, trained_registry: Path) -> None:
    events = recent_events(n_sessions=1500, session_seed=71)
    truth_items, truth_sessions = ground_truth(events)
    project = f"t{uuid.uuid4().hex[:8]}"
    options = StackOptions(project=project, registry=trained_registry, workers=2, scorers=2, redis_cluster=3)
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        addresses = start_stack(stack, options)
        services = Services(stack, addresses.kafka, addresses.redis, {}, project)
        ReplayThread(events, addresses.kafka).start().join()
        workers = tuple(stack.services[w.name] for w in addresses.workers)
        settled = wait_until_settled(services, sorted(truth_items), len(events), timeout_s=240, watch=workers)
        client = services.client()
        sessions = session_counts(client, project, sorted(truth_sessions))
        items = item_totals(client, project, sorted(truth_items))
        per_primary = sessions_per_node(addresses.redis_cluster_nodes, project)
        with grpc.insecure_channel(scorer_target(addresses.grpc), options=scorer_channel_options()) as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            answers = [stub.Recommend(pb.RecommendRequest(session_id=s, k=5), timeout=5) for s in list(sessions)[:20]]
        status = collect(targets_from_stack(dataclasses.asdict(addresses)))

    assert len(addresses.grpc.split(",")) == 2 and len(addresses.redis_cluster_nodes) == 6
    assert settled == len(events)
    assert sessions == truth_sessions and items == truth_items  # none lost, none twice, over 2 workers and 3 shards
    assert sum(1 for n in per_primary.values() if n > 0) == 3  # every primary holds some sessions
    assert all(not a.fallback for a in answers)
    names = [c.name for c in status.components]
    assert "redis" in names and sum(name.startswith("redis 127.0.0.1:") for name in names) == 6
    assert {c.name: c.ok for c in status.components}["redis"]


def sessions_per_node(nodes: list[str], project: str) -> dict[str, int]:
    """Session keys each primary holds (a replica's are copies and not counted)."""
    counts = {}
    for node in nodes:
        client = redis.Redis.from_url(f"redis://{node}")
        if client.info("replication")["role"] == "master":
            counts[node] = sum(1 for _ in client.scan_iter(match=session_key(project, "*"), count=1000))
        client.close()
    return counts
