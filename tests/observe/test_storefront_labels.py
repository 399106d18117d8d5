"""The storefront says only what Redis and the scorer said: the session's real last click, and an honest label.

`session_view` and `list_label` are tested on session states folded by the worker's own `apply_event` and on
answers shaped like the scorer's; then `Storefront.session` once through a real grpc.aio server with a scripted
servicer and a dict standing in for Redis, as the page calls it; last, on a real stack, a session sent by another
producer opened over HTTP and in headless Chromium (marked integration).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.probe import click, wait_for_refresh
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import SessionState, session_key
from streamrec.observe.config import ObserveSettings, Targets
from streamrec.observe.freshness import FreshnessTracker
from streamrec.observe.live import LiveFigures
from streamrec.observe.storefront import Storefront, list_label, session_view
from streamrec.observe.web import start_web
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis import sync_client
from streamrec.serving.rules import REASON_POPULAR, REASON_RANKED, REASON_REPEAT, REASON_SESSION, REASON_TRENDING
from streamrec.stream.processor import apply_event
from streamrec.stream.producer import replay
from streamrec.training.synthetic import SyntheticConfig, make_catalogue
from tests.observe.browser import headless_chromium
from tests.observe.conftest import ObservedStack

PROJECT = "labels"


def folded(*events: tuple[str, str]) -> bytes:
    """The JSON the worker writes after applying (type, item) events to a new session, in order."""
    state = SessionState()
    for n, (kind, item) in enumerate(events):
        apply_event(state, CanonicalEvent(f"e{n}", kind, "s1", "", item, 1_000 + n), now_ms=2_000 + n, offset=n)
    return state.to_json_bytes()


def answer(*reasons: str, fallback: bool = False, source: str = "refreshed") -> pb.RecommendResponse:
    items = [pb.ScoredItem(item_id=f"r{n}", score=1.0 - n / 10, reason=r) for n, r in enumerate(reasons)]
    return pb.RecommendResponse(items=items, model_version="v1", fallback=fallback, source=source, state_age_ms=5)


def test_last_click_is_the_last_item_of_the_session_state() -> None:
    raw = folded(("view", "a"), ("click", "b"), ("click", "c"), ("add_to_cart", "c"))
    view = session_view("s1", raw, answer(REASON_SESSION), 1.234)
    assert view["last_click"] == SessionState.from_json(raw).items[-1] == "c"
    assert view["history"] == ["a", "b", "c"] and view["events"] == 4
    assert view["last_event_id"] == "e3"  # the cart add: last event, but not a view or click
    assert view["recommend_ms"] == 1.23


def test_a_session_without_state_has_no_last_click_and_a_popular_label() -> None:
    view = session_view("new", None, answer(REASON_TRENDING, REASON_POPULAR, fallback=True, source="popularity"), 1)
    assert view["last_click"] is None and view["history"] == [] and view["events"] == 0
    assert view["label"] == {"kind": "popular", "text": "popular items (fallback: no views or clicks yet)"}
    assert [r["from_model"] for r in view["recommendations"]] == [False, False]


def test_a_fallback_is_never_labelled_session_model() -> None:
    """fallback=true wins over whatever the items' reasons say."""
    raw = folded(("click", "unknown-to-the-model"))
    reply = answer(REASON_SESSION, REASON_POPULAR, fallback=True, source="popularity")
    view = session_view("s1", raw, reply, 1)
    assert view["label"] == {"kind": "popular", "text": "popular items (fallback: the model did not rank this session)"}
    assert "session model" not in view["label"]["text"] and view["fallback"] is True


def test_a_list_with_no_model_item_is_popular_even_without_the_flag() -> None:
    label = list_label(answer(REASON_TRENDING, REASON_POPULAR, source="inline"), has_history=True)
    assert label.kind == "popular" and label.text.startswith("popular items (fallback")


def test_model_lists_and_topped_up_lists() -> None:
    assert list_label(answer(REASON_SESSION, REASON_RANKED, REASON_REPEAT), has_history=True) == (
        list_label(answer(REASON_SESSION), has_history=True)
    )
    assert list_label(answer(REASON_SESSION), has_history=True).text == "session model"
    mixed = list_label(answer(REASON_SESSION, REASON_TRENDING, REASON_POPULAR, source="inline"), has_history=True)
    assert (mixed.kind, mixed.text) == ("mixed", "session model, topped up with 2 popular items")
    one = list_label(answer(REASON_SESSION, REASON_POPULAR, source="inline"), has_history=True)
    assert one.text == "session model, topped up with 1 popular item"


def test_items_carry_their_reason_and_whether_the_model_chose_them() -> None:
    view = session_view("s1", folded(("click", "a")), answer(REASON_SESSION, REASON_TRENDING, source="inline"), 1)
    assert view["recommendations"] == [
        {"item_id": "r0", "score": 1.0, "reason": REASON_SESSION, "from_model": True},
        {"item_id": "r1", "score": 0.9, "reason": REASON_TRENDING, "from_model": False},
    ]
    assert (view["source"], view["model_version"], view["state_age_ms"]) == ("inline", "v1", 5)


class ScriptedRecommender(recommender_pb2_grpc.RecommenderServicer):
    """Answers each session with the reply the test set for it."""

    def __init__(self, replies: dict[str, pb.RecommendResponse]) -> None:
        self.replies = replies

    async def Recommend(self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext) -> pb.RecommendResponse:
        return self.replies[request.session_id]


class DictRedis:
    """The Redis commands `Storefront.session` sends: GET of the session, HMGET of the catalogue's titles."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def execute(self, commands: list[tuple[Any, ...]]) -> list[object]:
        assert all(command[0] == "HMGET" for command in commands)
        return [[None] * (len(command) - 2) for command in commands]  # no catalogue here


@pytest.fixture
async def channel_to() -> AsyncIterator[Any]:
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def start(servicer: recommender_pb2_grpc.RecommenderServicer) -> grpc.aio.Channel:
        server = grpc.aio.server()
        recommender_pb2_grpc.add_RecommenderServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
        return channels[-1]

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(0)


async def test_storefront_session_reads_redis_and_labels_the_scorers_answer(channel_to: Any) -> None:
    replayed = folded(("click", "214826612"), ("click", "214826835"))  # e.g. a session `streamrec replay` sent
    clicked = folded(("click", "i00001"))
    redis = DictRedis({session_key(PROJECT, "replayed"): replayed, session_key(PROJECT, "known"): clicked})
    replies = {
        "replayed": answer(REASON_POPULAR, REASON_POPULAR, fallback=True, source="popularity"),
        "known": answer(REASON_SESSION, REASON_SESSION),
    }
    channel = await channel_to(ScriptedRecommender(replies))
    targets = Targets(kafka="127.0.0.1:1", redis="redis://127.0.0.1:1/0", grpc="unused", project=PROJECT)
    figures = LiveFigures()
    tracker = FreshnessTracker(redis, PROJECT, 1.0, lambda _: None)
    store = Storefront(targets, redis, channel, tracker, figures, click_timeout_s=1.0)

    view = await store.session("replayed")
    assert view["last_click"] == "214826835" and view["history"] == ["214826612", "214826835"]
    assert view["label"]["kind"] == "popular" and view["source"] == "popularity"
    known = await store.session("known")
    assert known["last_click"] == "i00001" and known["label"] == {"kind": "model", "text": "session model"}
    assert len(figures.recommend.items) == 2  # both calls joined the page's Recommend figures


@pytest.mark.integration
def test_a_replayed_session_opened_in_the_storefront(observed_stack: ObservedStack, tmp_path: Path) -> None:
    """Events sent by another producer (as `streamrec replay` does) show as the page's last click and history;
    a session with no events is labelled popular, over HTTP and in headless Chromium."""
    items = make_catalogue(SyntheticConfig()).item_ids[:3]  # the world the stack's model was trained in
    session = f"replayed-{time.time_ns()}"
    events = [click(session, item) for item in items]
    replay(events, observed_stack.targets.kafka, EVENTS_TOPIC)
    client = sync_client(observed_stack.targets.redis)
    try:
        wait_for_refresh(client, observed_stack.targets.project, session, events[-1].event_id, timeout_s=30)
    finally:
        client.close()
    server = start_web(observed_stack.targets, 0, settings=ObserveSettings(recommend_probes_per_s=1))
    try:
        with urllib.request.urlopen(f"{server.url}/api/sessions/{session}", timeout=30) as reply:
            view = json.loads(reply.read())
        assert view["last_click"] == items[-1] and view["history"] == items
        assert not view["fallback"] and view["label"]["kind"] in ("model", "mixed")
        with headless_chromium(tmp_path / "profile") as driver:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            wait = WebDriverWait(driver, 30)
            driver.get(f"{server.url}/store?session={session}")
            last = driver.find_element(By.ID, "last-item")
            wait.until(lambda _: last.get_attribute("data-item-id") == items[-1])
            label = driver.find_element(By.ID, "recs-label")
            assert label.get_attribute("data-kind") in ("model", "mixed") and "session model" in label.text
            driver.get(f"{server.url}/store?session=fresh-{time.time_ns()}")
            label = driver.find_element(By.ID, "recs-label")
            wait.until(lambda _: label.get_attribute("data-kind") == "popular")
            assert label.text.startswith("popular items (fallback") and "session model" not in label.text
            assert driver.find_element(By.ID, "last-item").text == "none yet"
    finally:
        server.stop()
