"""Publish one click and wait until its refreshed recommendations are visible in Redis; report the latency."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import cast

import redis

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.cli_args import kafka_logger
from streamrec.errors import StackError
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import Recommendations, recs_key
from streamrec.redis import sync_client
from streamrec.stream.producer import EventProducer


def wait_for_refresh(
    client: redis.Redis,
    project: str,
    session_id: str,
    event_id: str,
    timeout_s: float,
    still_worth_waiting: Callable[[], bool] = lambda: True,
) -> Recommendations:
    """Poll until the session's refreshed list was caused by `event_id` (1 ms steps: we measure latency)."""
    key = recs_key(project, session_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and still_worth_waiting():
        raw = cast("bytes | None", client.get(key))
        if raw:
            recs = Recommendations.from_json(raw)
            if recs.event_id == event_id:
                return recs
        time.sleep(0.001)
    raise StackError(f"no refreshed recommendations for event {event_id} of session {session_id} within {timeout_s}s")


def click(session_id: str, item_id: str, event_id: str | None = None) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=event_id or f"{session_id}-{uuid.uuid4().hex[:12]}",
        type="click",
        session_id=session_id,
        user_id="",
        item_id=item_id,
        ts_ms=int(time.time() * 1000),
    )


def probe_session(
    kafka: str,
    redis_url: str,
    project: str,
    session_id: str,
    item_id: str = "probe-item",
    timeout_s: float = 30.0,
    still_worth_waiting: Callable[[], bool] = lambda: True,
) -> float:
    """Send a click for `session_id`, wait for its refresh; return produce-to-visible latency in ms."""
    client = sync_client(redis_url)
    producer = EventProducer(kafka, EVENTS_TOPIC, logger=kafka_logger())
    try:
        event = click(session_id, item_id)
        start = time.perf_counter()
        producer.send(session_id, event.to_bytes())
        producer.flush(10)
        wait_for_refresh(client, project, session_id, event.event_id, timeout_s, still_worth_waiting)
        return (time.perf_counter() - start) * 1000
    finally:
        client.close()
