"""The load generator is open-loop: against a slowed server its latencies include the queueing delay.

A single-call-at-a-time server taking 20 ms per call, offered 100 calls/s for 1 s, finishes call i at about
(i + 1) * 20 ms while it was due at i * 10 ms: its true latency is about 10 ms * i + 20 ms, so the median is
about 0.5 s and the last about 1 s. A closed-loop client (or one timing from the actual send) would report
about 20 ms for every call.
"""

from __future__ import annotations

import time

import pytest

from streamrec.loadtest.fleet import Fleet
from streamrec.loadtest.histograms import decode, summary_ms
from streamrec.loadtest.loadgen import LoadConfig, PagePlan, run_generator
from tests.loadtest.fake_scorer import slow_server

SERVICE_S = 0.02
RATE = 100.0
PLAN = PagePlan([0.0, 0.5], ["s1", "s2"], ["i1", "i2"], window_s=30.0)

pytestmark = pytest.mark.integration


def test_latency_counts_queueing_at_a_slow_server() -> None:
    with slow_server(SERVICE_S) as (address, servicer):
        result = run_generator(LoadConfig(address, rate=RATE, duration_s=1.0, deadline_s=10.0), PLAN)
    latency = summary_ms(decode(result.latency))
    lag = summary_ms(decode(result.send_lag))
    assert servicer.calls == 100 and result.codes == {"OK": 100}
    assert latency["p50_ms"] > 300, latency  # ~500 ms of queueing, where the service time is 20 ms
    assert latency["max_ms"] > 800, latency
    assert lag["p99_ms"] < 50, lag  # the calls were sent on time: the delay is the server's queue


def test_client_side_limit_still_counts_from_the_due_time() -> None:
    # one call in flight at a time is what a closed-loop client does; timed from the due time it is still honest
    with slow_server(SERVICE_S) as (address, _):
        config = LoadConfig(address, rate=RATE, duration_s=1.0, deadline_s=10.0, max_inflight=1)
        result = run_generator(config, PLAN)
    latency = summary_ms(decode(result.latency))
    assert latency["count"] == 100
    assert latency["p50_ms"] > 300, latency


def test_fast_server_gets_the_offered_rate_and_errors_are_counted_by_code() -> None:
    with slow_server(0.0) as (address, servicer):
        result = run_generator(LoadConfig(address, rate=200.0, duration_s=1.0), PLAN)
        assert servicer.calls == 200
        assert summary_ms(decode(result.latency))["p50_ms"] < 50
    with slow_server(0.05) as (address, _):  # a deadline shorter than the service time
        result = run_generator(LoadConfig(address, rate=50.0, duration_s=0.4, deadline_s=0.01), PLAN)
    assert result.codes == {"DEADLINE_EXCEEDED": 20}


def test_two_processes_share_the_rate_and_merge_their_histograms() -> None:
    with slow_server(0.0) as (address, servicer):
        with Fleet(LoadConfig(address, rate=100.0, duration_s=1.0), PLAN, processes=2) as fleet:
            fleet.start()
            fleet.go(time.time() + 0.2)
            merged = fleet.collect(timeout_s=30)
        assert servicer.calls == 100
    assert merged.processes == 2 and merged.codes == {"OK": 100}
    assert merged.latency.get_total_count() == 100
    assert sum(row["issued"] for row in merged.timeline.rows()) == 100
