"""Two workers in one consumer group share a 4-partition topic, and a rebalance mid-replay loses nothing."""

from __future__ import annotations

import threading
import time

import pytest

from streamrec.stream.producer import replay
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered
from tests.faults.support import wait_until_settled
from tests.integration.harness import (
    EVENTS_TOPIC,
    Services,
    applied_total,
    ground_truth,
    item_totals,
    session_counts,
    worker_partitions,
)

pytestmark = pytest.mark.integration


def test_second_worker_joins_mid_replay_and_state_equals_the_truth(services: Services) -> None:
    events = generate_time_ordered(SyntheticConfig(n_sessions=5000, session_seed=41))
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)
    first = services.start_worker("worker-a")
    replayer = threading.Thread(
        target=replay, args=(events, services.kafka, EVENTS_TOPIC), kwargs={"rate": 3000}, daemon=True
    )
    replayer.start()
    client = services.client()
    while applied_total(client, services.project, items) < len(events) * 0.3:
        assert first.alive(), first.log_tail()
        time.sleep(0.05)
    second = services.start_worker("worker-b")  # the group rebalances while events keep coming
    replayer.join()
    assert wait_until_settled(services, items, len(events), timeout_s=180) == len(events)
    assert item_totals(client, services.project, items) == truth_items
    assert session_counts(client, services.project, sorted(truth_sessions)) == truth_sessions
    assert first.alive() and second.alive()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        owners = worker_partitions(client, services.project)
        if len(owners) == 2 and all(owners.values()):
            break
        time.sleep(0.5)
    assert len(owners) == 2 and sorted(p for ps in owners.values() for p in ps) == [0, 1, 2, 3], owners
