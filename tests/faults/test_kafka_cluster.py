"""Faults on a 3-node Apache Kafka cluster (replication factor 3, `min.insync.replicas` 2): a partition leader
killed with -9 mid-replay, and a worker killed with -9 whose successor must rebuild its tables from the
changelogs the cluster kept. Nothing lost, nothing applied twice."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from streamrec.devstack.localstack import LocalStack
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import session_key
from tests.faults.support import (
    ReplayThread,
    in_sync_replicas,
    node_id,
    partition_leaders,
    recent_events,
    start_services,
    wait_applied,
    wait_until_settled,
)
from tests.integration.harness import ground_truth, item_totals, session_counts

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REPLAY_RATE = 6000.0  # events/s: the replay is still producing when the leader dies


def test_partition_leader_killed_mid_replay_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, trained_registry: Path
) -> None:
    events = recent_events(n_sessions=15_500, session_seed=47)
    assert len(events) >= 100_000
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)

    with LocalStack(state_dir=tmp_path / "stack") as stack:
        services = start_services(stack, trained_registry, brokers=3)
        assert all(len(isr) == 3 for isr in in_sync_replicas(services.kafka).values())
        worker = services.start_worker("worker")
        replayer = ReplayThread(events, services.kafka, rate=REPLAY_RATE).start()
        wait_applied(services, items, 1000, timeout_s=120, watch=(worker,))
        replayer.wait_handed(len(events) * 3 // 10)

        leader = partition_leaders(stack, services.kafka)[0]
        os.kill(leader.process.pid, signal.SIGKILL)  # no shutdown: its unflushed page cache is all it loses
        leader.process.wait()
        killed_id = node_id(leader)

        result = replayer.join()
        assert result.failed == 0, result.errors  # acks=all with 2 of 3 in sync: the producer retried, no loss
        settled = wait_until_settled(services, items, len(events), timeout_s=400, watch=(worker,))
        client = services.client()
        final_items = item_totals(client, services.project, items)
        final_sessions = session_counts(client, services.project, sorted(truth_sessions))
        leaders_after = partition_leaders(stack, services.kafka)

    assert killed_id not in {node_id(s) for s in leaders_after.values()}  # a failover happened
    assert settled == len(events)
    assert final_items == truth_items  # every event counted once: none lost, none twice
    assert final_sessions == truth_sessions


def split_each_session(events: list[CanonicalEvent]) -> tuple[list[CanonicalEvent], list[CanonicalEvent]]:
    """The first half of every session's events, and the rest, each in time order."""
    lengths = Counter(e.session_id for e in events)
    seen: Counter[str] = Counter()
    first, second = [], []
    for event in events:
        seen[event.session_id] += 1
        (first if seen[event.session_id] <= lengths[event.session_id] // 2 else second).append(event)
    return first, second


def test_worker_killed_rebuilds_its_session_table_from_the_replicated_changelog(
    tmp_path: Path, trained_registry: Path
) -> None:
    events = recent_events(n_sessions=600, session_seed=53, mean_session_length=10.0)
    first, second = split_each_session(events)
    _, truth_sessions = ground_truth(events)
    continued = sorted({e.session_id for e in first} & {e.session_id for e in second})
    assert len(continued) > 100

    with LocalStack(state_dir=tmp_path / "stack") as stack:
        services = start_services(stack, trained_registry, brokers=3)
        items = sorted(ground_truth(first)[0])
        worker = services.start_worker("worker-a")
        ReplayThread(first, services.kafka).start().join()
        assert wait_until_settled(services, items, len(first), timeout_s=180, watch=(worker,)) == len(first)
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        time.sleep(1)  # let the changelog's last batch reach every replica; the test is about the table

        # the online copy is gone too (a Redis restart without persistence): only the changelog remembers
        client = services.client()
        client.delete(*[session_key(services.project, sid) for sid in truth_sessions])
        successor = services.start_worker("worker-b")  # a fresh data directory: nothing local to start from
        ReplayThread(second, services.kafka).start().join()
        all_items = sorted(ground_truth(events)[0])
        assert wait_until_settled(services, all_items, len(events), timeout_s=240, watch=(successor,)) == len(events)
        counts = session_counts(client, services.project, continued)

    assert {sid: counts[sid] for sid in continued} == {sid: truth_sessions[sid] for sid in continued}
