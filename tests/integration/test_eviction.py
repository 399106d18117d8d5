"""Idle sessions leave the worker's memory, and their next event still continues them exactly (from the
Redis copy, which lives longer)."""

from __future__ import annotations

import time

import pytest

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.probe import wait_for_refresh
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import SessionState, session_key
from streamrec.stream.producer import EventProducer
from tests.integration.harness import Services

pytestmark = pytest.mark.integration


def test_an_evicted_session_continues_from_its_online_copy(services: Services) -> None:
    services.env["STREAMREC_STREAM_SESSION_IDLE_S"] = "1"
    worker = services.start_worker("worker")
    producer = EventProducer(services.kafka, EVENTS_TOPIC)
    client = services.client()

    def send(n: int, item: str) -> None:
        event = CanonicalEvent(f"evict-{n}", "click", "evict-me", "", item, int(time.time() * 1000))
        producer.send("evict-me", event.to_bytes())
        producer.flush(10)
        wait_for_refresh(client, services.project, "evict-me", event.event_id, 60, worker.alive)

    send(0, "i1")
    send(1, "i2")
    deadline = time.monotonic() + 20
    while "evicted" not in worker.log_tail(200) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "evicted" in worker.log_tail(200)
    send(2, "i3")
    state = SessionState.from_json(client.get(session_key(services.project, "evict-me")))  # type: ignore[arg-type]
    assert state.items == ["i1", "i2", "i3"] and state.events == 3
