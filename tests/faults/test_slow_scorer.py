"""A scorer slower than the worker's Score deadline: the worker skips and counts every refresh, still writes every
event's state, and applies backpressure: unprocessed events wait in Kafka, not in its memory (RSS bounded).

The bound: the worker holds at most BUFFER events in its batcher, what Faust's stream buffer and aiokafka's
fetcher hold (about 1 MiB per partition), and its session table (one entry per session, 1,500 here). Its RSS is
about 100 MiB once it runs; GROWTH_BOUND_MB above that leaves room for the buffers and warm-up (measured here:
about 23 MiB over a ~100k-event backlog, flat after the first seconds). RSS_BOUND_MB is an absolute ceiling with
room for the modules of later versions. The test checks the outcome, not which buffer bounds it: with the
batcher's buffer raised to 200,000 the peak was about the same (126 MiB), as Faust and aiokafka stop fetching
by themselves while their own buffers are full.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from tests.faults.support import (
    ReplayThread,
    RssSampler,
    metric,
    recent_events,
    scrape,
    start_services,
    wait_until_settled,
)
from tests.integration.harness import Services, applied_total, ground_truth, item_totals, session_counts
from tests.loadtest.fake_scorer import serving

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SCORE_SLEEP_S = 1.0  # the slow scorer's time per Score call
SCORER_TIMEOUT_S = 0.2  # the worker's deadline for it: every refresh times out
BATCH = 1000
BUFFER = 2000
SESSIONS, SESSION_LENGTH = 1500, 60.0  # a long backlog (~100k events) over few sessions: the table stays small
RSS_BOUND_MB = 250.0  # absolute: about 100 MiB at rest here, see the module docstring
GROWTH_BOUND_MB = 40.0  # from the first applied event to the peak


class SlowRecommender(recommender_pb2_grpc.RecommenderServicer):
    """Answers Score, but only after SCORE_SLEEP_S; counts the calls it received."""

    def __init__(self) -> None:
        self.calls = 0

    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        self.calls += 1
        await asyncio.sleep(SCORE_SLEEP_S)
        return pb.ScoreResponse(model_version="slow")


def test_slow_scorer_backpressure_keeps_memory_bounded_and_state_complete(
    tmp_path: Path, trained_registry: Path
) -> None:
    events = recent_events(n_sessions=SESSIONS, session_seed=47, mean_session_length=SESSION_LENGTH)
    truth_items, truth_sessions = ground_truth(events)
    items = sorted(truth_items)
    metrics_port = free_port()

    with LocalStack(state_dir=tmp_path / "stack") as stack, serving(SlowRecommender()) as (address, servicer):
        services = start_services(stack, trained_registry, scorer=False, scorer_address=address)
        services.env.update(
            {
                "STREAMREC_STREAM_SCORER_TIMEOUT_S": str(SCORER_TIMEOUT_S),
                "STREAMREC_STREAM_BATCH_MAX_EVENTS": str(BATCH),
                "STREAMREC_STREAM_BUFFER_MAX_EVENTS": str(BUFFER),
                "STREAMREC_STREAM_METRICS_PORT": str(metrics_port),
            }
        )
        result = ReplayThread(events, services.kafka).start().join()  # the whole backlog, before the worker
        worker = services.start_worker("worker")
        sampler = RssSampler({"worker": worker.process.pid}, interval_s=0.25).start()
        consumed = drain(services, items, len(events), worker)
        sampler.stop()
        settled = wait_until_settled(services, items, len(events), timeout_s=60, watch=(worker,))
        scraped = scrape(metrics_port)
        client = services.client()
        final_items = item_totals(client, services.project, items)
        final_sessions = session_counts(client, services.project, sorted(truth_sessions))

    failed = metric(scraped, "streamrec_worker_refreshes_total", {"outcome": "failed"})
    ok = metric(scraped, "streamrec_worker_refreshes_total", {"outcome": "ok"})
    running = [mb for t, mb in sampler.samples["worker"] if t >= consumed.first_applied_s]
    figures = {
        "figure": "slow_scorer_backpressure",
        "events": len(events),
        "drain_s": round(consumed.seconds - consumed.first_applied_s, 1),
        "rss_at_first_event_mb": round(running[0], 1),
        "rss_max_mb": round(max(running), 1),
        "rss_end_mb": round(running[-1], 1),
        "rss_bound_mb": RSS_BOUND_MB,
        "growth_bound_mb": GROWTH_BOUND_MB,
        "max_lag_events": max(consumed.lag),
        "score_calls": servicer.calls,
        "refreshes_failed": failed,
        "refreshes_ok": ok,
    }
    print(json.dumps(figures))
    assert result.failed == 0, result.errors
    assert max(consumed.lag) > 10 * BUFFER  # the worker stayed behind: most of the backlog waited for it
    assert max(running) < RSS_BOUND_MB
    assert max(running) - running[0] < GROWTH_BOUND_MB  # ... in Kafka, not in the worker's memory
    assert servicer.calls > 0 and ok == 0 and failed >= servicer.calls  # every refresh skipped, and counted
    assert settled == len(events)
    assert final_items == truth_items
    assert final_sessions == truth_sessions


@dataclass
class Drained:
    first_applied_s: float = 0.0  # since the worker started
    seconds: float = 0.0
    lag: list[int] = field(default_factory=list)  # events not yet applied, sampled while the worker ran


def drain(services: Services, items: list[str], expected: int, worker: Service) -> Drained:
    """Watch the worker work through the backlog: when it started applying, and how far behind it stayed."""
    client = services.client()
    out = Drained()
    started = time.monotonic()
    while (applied := applied_total(client, services.project, items)) < expected:
        assert worker.alive(), worker.log_tail(40)
        assert time.monotonic() - started < 240, f"only {applied} of {expected} applied"
        if applied:
            out.first_applied_s = out.first_applied_s or time.monotonic() - started
            out.lag.append(expected - applied)
        time.sleep(0.25)
    out.seconds = time.monotonic() - started
    return out
