"""The freshness tracker against a real redis-server: a refresh is seen, a later one counts, a missing one times out."""

from __future__ import annotations

import asyncio
import time

import pytest

from streamrec.features.session_store import Recommendations, recs_key
from streamrec.observe.freshness import FreshnessTracker, Pending, latency_ms, visible
from streamrec.redis import FastRedis

pytestmark = pytest.mark.integration  # a real redis-server (tests/conftest.py)


def recs(event_id: str, offset: int, refreshed_ms: float) -> Recommendations:
    return Recommendations(offset, [("i1", 1.0)], "v1", event_id, 0, int(refreshed_ms))


async def test_visible_and_latency_rules() -> None:
    pending = Pending("s", "e2", sent_ms=1000.0, offset=20)
    assert visible(recs("e2", 20, 0), pending)
    assert visible(recs("e3", 21, 0), pending)  # a later record's list includes this event
    assert not visible(recs("e1", 19, 0), pending)
    assert not visible(recs("e3", 21, 0), Pending("s", "e2", 1000.0, None))  # offset unknown: only its own id
    # seen at the first look: the worker's stamp, not the observer's
    assert latency_ms(recs("e2", 20, 1012), pending, now_ms=1500) == 12
    pending.looked = True
    assert latency_ms(recs("e2", 20, 1012), pending, now_ms=1030) == 30


async def test_tracker_follows_events_to_their_refresh(redis_url: str, project: str) -> None:
    client = FastRedis(redis_url)
    recorded: list[float | None] = []
    tracker = FreshnessTracker(client, project, timeout_s=0.5, record=recorded.append)
    runner = asyncio.create_task(tracker.run())
    try:
        sent = time.time() * 1000
        seen = tracker.expect("s1", "e1", sent)
        tracker.offer("s2", "e7", sent, offset=7)
        missing = tracker.expect("s3", "never", sent)
        await asyncio.sleep(0.05)
        await client.execute([("SET", recs_key(project, "s1"), recs("e1", 3, time.time() * 1000).to_json())])
        await client.execute([("SET", recs_key(project, "s2"), recs("e9", 9, time.time() * 1000).to_json())])
        assert 40 <= await asyncio.wait_for(seen, 2) < 1000
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(missing, 2)
        assert len(recorded) == 3 and recorded.count(None) == 1
        assert not tracker.pending
    finally:
        runner.cancel()
        await client.aclose()
