"""The two freshness probes against real servers: Redis (exact event ids) and Recommend (state age)."""

from __future__ import annotations

import time

import pytest
import redis

from streamrec.features.session_store import Recommendations, recs_key
from streamrec.loadtest.freshness import FreshnessProbe
from streamrec.loadtest.visible import RecommendProbe
from tests.loadtest.fake_scorer import StateRecommender, serving

pytestmark = pytest.mark.integration


def _write_recs(client: redis.Redis, project: str, session: str, event_id: str) -> None:
    recs = Recommendations(0, [("i1", 1.0)], "v1", event_id, 0, int(time.time() * 1000))
    client.set(recs_key(project, session), recs.to_json())


@pytest.mark.parametrize("step", [0.0, 0.05], ids=["every-poll", "relative-step"])
def test_redis_probe_matches_the_event_or_a_later_one_of_its_session(redis_url: str, project: str, step: float):
    client = redis.Redis.from_url(redis_url)
    _write_recs(client, project, "s1", "old")  # a list from before the probe must not count
    probe = FreshnessProbe(redis_url, project, relative_step=step).start()
    probe.sent("s1", "e1")
    probe.sent("s2", "e2")
    probe.followed("s2", "e3")  # e2 and e3 folded into one batch: the list names e3
    probe.sent("s4", "e5")
    probe.sent("s4", "e6")  # sampled while s4 has a probe pending: a list naming e6 answers the probe of e5
    time.sleep(0.05)
    _write_recs(client, project, "s1", "e1")
    _write_recs(client, project, "s2", "e3")
    _write_recs(client, project, "s4", "e6")
    probe.sent("s3", "e4")  # never refreshed: missing
    report = probe.stop(drain_s=0.3)
    client.close()
    assert len(report.latencies_ms) == 3 and report.missing == 1
    assert all(40 <= ms < 1000 for ms in report.latencies_ms), report.latencies_ms


def test_recommend_probe_waits_for_state_written_after_the_event() -> None:
    scorer = StateRecommender()
    scorer.updated_ms["s1"] = int(time.time() * 1000) - 5_000  # state from an earlier event
    with serving(scorer) as (address, _):
        probe = RecommendProbe(address, poll_s=0.002).start()
        probe.sent("s1", "e1")
        probe.sent("cold", "e2")  # a new session: no state at all until the worker writes one
        time.sleep(0.08)
        now_ms = int(time.time() * 1000)
        scorer.updated_ms["s1"] = now_ms
        scorer.updated_ms["cold"] = now_ms
        report = probe.stop(drain_s=2.0)
    assert report.missing == 0 and len(report.latencies_ms) == 2
    assert all(75 <= ms < 500 for ms in report.latencies_ms), report.latencies_ms
    assert probe.sources == {"refreshed": 2}
    assert 4 <= probe.calls <= 20  # it kept asking while the state was older, within 100 calls/s


def test_recommend_probe_keeps_to_its_call_budget_under_a_backlog() -> None:
    with serving(StateRecommender()) as (address, _):
        probe = RecommendProbe(address, poll_s=0.001, max_calls_per_s=100.0).start()
        for n in range(50):  # 50 sessions the worker never gets to
            probe.sent(f"s{n}", f"e{n}")
        time.sleep(0.5)
        report = probe.stop(drain_s=0.0)
    assert report.missing == 50
    assert probe.calls <= 0.6 * 100 + 5, probe.calls  # the budget over ~0.5 s plus one burst
