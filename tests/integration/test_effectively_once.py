"""Effectively-once under at-least-once delivery: kill -9 the worker mid-replay, restart it, and the final
counters equal the ground truth of the replayed events, with producer duplicates mixed in."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from streamrec.events import CanonicalEvent
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
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def with_producer_duplicates(events: list[CanonicalEvent], share: float, seed: int) -> list[CanonicalEvent]:
    """Resend a share of events a little later, as a producer retrying after a lost ack would."""
    rng = random.Random(seed)
    out = list(events)
    for i in sorted(rng.sample(range(len(events)), int(len(events) * share)), reverse=True):
        out.insert(min(len(out), i + rng.randrange(1, 5)), events[i])
    return out


def test_kill_9_mid_replay_loses_nothing_and_counts_nothing_twice(services: Services) -> None:
    events = generate_time_ordered(SyntheticConfig(n_sessions=15_500, session_seed=31))
    assert len(events) >= 100_000
    sent = with_producer_duplicates(events, share=0.01, seed=5)
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)

    worker = services.start_worker("worker-a")
    replayer = threading.Thread(target=replay, args=(sent, services.kafka, EVENTS_TOPIC), daemon=True)
    replayer.start()
    client = services.client()
    while applied_total(client, services.project, items) < len(events) * 0.4:
        assert worker.alive(), worker.log_tail()
        time.sleep(0.05)
    os.kill(worker.process.pid, signal.SIGKILL)  # no shutdown, no final commit, no flush
    worker.process.wait()
    replayer.join()
    services.start_worker("worker-b")

    # generous: on a slow machine worker-b needed ~115 s here; the bound only matters when something is broken
    assert wait_until_settled(services, items, len(events), timeout_s=400) == len(events)
    assert item_totals(client, services.project, items) == truth_items
    assert session_counts(client, services.project, sorted(truth_sessions)) == truth_sessions
