"""A broker frozen for 10 s mid-replay (SIGSTOP, then SIGCONT): alone, producers buffer and retry and the worker
waits; in a 3-node cluster the others take over its partitions meanwhile. Either way the worker and the producers
resume, and nothing is lost or counted twice."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from streamrec.devstack.localstack import LocalStack
from tests.faults.support import (
    ReplayThread,
    partition_leaders,
    recent_events,
    start_services,
    wait_applied,
    wait_until_settled,
)
from tests.integration.harness import applied_total, ground_truth, item_totals, session_counts

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# longer than the worker's group session timeout (6 s in the local stack) and the cluster's broker session timeout
# (4 s): on resume the broker may expire the member and rebalance, or find its partitions led by another node
FREEZE_S = 10.0
REPLAY_RATE = 1500.0  # events/s: slow enough that the producer is mid-stream when the broker freezes


@pytest.mark.parametrize("brokers", [1, 3])
def test_broker_frozen_for_seconds_loses_nothing(tmp_path: Path, trained_registry: Path, brokers: int) -> None:
    events = recent_events(n_sessions=2500, session_seed=43)
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)

    with LocalStack(state_dir=tmp_path / "stack") as stack:
        services = start_services(stack, trained_registry, brokers=brokers)
        worker = services.start_worker("worker")
        broker = partition_leaders(stack, services.kafka)[0]
        replayer = ReplayThread(events, services.kafka, rate=REPLAY_RATE).start()
        wait_applied(services, items, 100, timeout_s=120, watch=(worker,))  # the worker is consuming
        replayer.wait_handed(len(events) * 3 // 10)

        client = services.client()
        os.kill(broker.process.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            time.sleep(FREEZE_S)
            at_resume = applied_total(client, services.project, items)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        while brokers == 1 and applied_total(client, services.project, items) == at_resume:
            assert worker.alive(), worker.log_tail(40)
            assert time.monotonic() - resumed_at < 120, "the worker did not resume after the broker came back"
            time.sleep(0.05)
        progressing_at = time.monotonic()
        result = replayer.join()
        settled = wait_until_settled(services, items, len(events), timeout_s=180, watch=(worker,))
        final_items = item_totals(client, services.project, items)
        final_sessions = session_counts(client, services.project, sorted(truth_sessions))

    figures = {
        "figure": "broker_freeze",
        "frozen_s": round(resumed_at - frozen_at, 2),
        "resume_to_progress_s": round(progressing_at - resumed_at, 2),
        "replay_s": round(result.seconds, 1),
        "replay_done_after_resume_s": round(replayer.finished_at - resumed_at, 2),
        "applied": settled,
        "expected": len(events),
    }
    print(json.dumps(figures))
    if brokers == 1:  # the producer was still delivering: it buffered through the freeze
        assert replayer.finished_at > resumed_at
    assert result.failed == 0, result.errors  # ... and retried, losing nothing
    assert settled == len(events)
    assert final_items == truth_items
    assert final_sessions == truth_sessions
