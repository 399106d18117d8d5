"""The demo storefront's server side: a catalogue, a session's view (history + Recommend), and real clicks.

A click is a real `click` event produced to `streamrec.events`, keyed by session like every producer's; the
answer waits until the worker's refreshed list for that click is visible in Redis, so the page can show the
new recommendations and how long the refresh took.

A session's view is built by `session_view` from what Redis and the scorer said, nothing else: the last click
is the last item of the session's state (whoever produced it: this page, `streamrec replay`, any client), and
the list's label comes from the answer's `fallback` flag and its items' reasons (`list_label`), so a popularity
list is never called the session model's.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from streamrec.artifact import current_version, load_manifest
from streamrec.devstack.probe import click
from streamrec.errors import ArtifactError
from streamrec.features.session_store import SessionState, session_key
from streamrec.observe.config import Targets
from streamrec.observe.freshness import FreshnessTracker
from streamrec.observe.live import LiveFigures
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.serving.rules import MODEL_REASONS
from streamrec.stream.producer import EventProducer

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")  # what the page may send: no key-namespace tricks
CATALOGUE_SIZE = 24
RECOMMEND_K = 8
SEARCH_K = 8
MAX_QUERY_CHARS = 256  # the scorer's limit (serving/config.py); the page refuses longer before asking
CATALOGUE_SESSION = "__observe-catalogue__"  # never clicked, so Recommend answers it with popular items
CATALOGUE_TTL_S = 10.0
RECOMMEND_TIMEOUT_S = 2.0
# `streamrec up` proves the path with a click on this item (streamrec/devstack/probe.py), so it trends on an idle stack;
# it is not a product, and the model does not know it, so it stays off the shelf.
HIDDEN_ITEMS = frozenset({"probe-item"})


class Storefront:
    def __init__(
        self,
        targets: Targets,
        redis_client: Any,
        channel: grpc.aio.Channel,
        tracker: FreshnessTracker,
        figures: LiveFigures,
        click_timeout_s: float,
    ) -> None:
        self.targets = targets
        self.project = targets.project
        self.redis = redis_client
        self.stub = recommender_pb2_grpc.RecommenderStub(channel)
        self.tracker = tracker
        self.figures = figures
        self.click_timeout_s = click_timeout_s
        self._producer: EventProducer | None = None
        self._catalogue: tuple[float, list[dict[str, Any]]] = (0.0, [])

    async def recommend(self, session_id: str, k: int) -> pb.RecommendResponse:
        """One timed Recommend call; its client-side latency joins the page's Recommend figures."""
        started = time.perf_counter()
        reply: pb.RecommendResponse = await self.stub.Recommend(
            pb.RecommendRequest(session_id=session_id, k=k, context=pb.PageContext(page="home")),
            timeout=RECOMMEND_TIMEOUT_S,
            metadata=self.targets.credentials.grpc_metadata(),
        )
        self.figures.record_recommend((time.perf_counter() - started) * 1000, time.monotonic())
        return reply

    async def catalogue(self) -> list[dict[str, Any]]:
        """Popular items (what Recommend gives a session it has never seen), cached for a few seconds."""
        at, items = self._catalogue
        if items and time.monotonic() - at < CATALOGUE_TTL_S:
            return items
        reply = await self.recommend(CATALOGUE_SESSION, CATALOGUE_SIZE + len(HIDDEN_ITEMS))
        items = [{"item_id": i.item_id, "reason": i.reason} for i in reply.items if i.item_id not in HIDDEN_ITEMS]
        shown = {i["item_id"] for i in items}
        # a young stack trends only a handful of items: fill the shelf with the model's training favourites
        items += [{"item_id": i, "reason": "popular in training"} for i in self._training_popular() if i not in shown]
        items = await self.describe(items[:CATALOGUE_SIZE])
        self._catalogue = (time.monotonic(), items)
        return items

    async def search(self, session_id: str, query: str) -> dict[str, Any]:
        """One timed Search for the session; its client-side latency joins the page's Search figures."""
        started = time.perf_counter()
        reply: pb.SearchResponse = await self.stub.Search(
            pb.SearchRequest(query=query, session_id=session_id, k=SEARCH_K),
            timeout=RECOMMEND_TIMEOUT_S,
            metadata=self.targets.credentials.grpc_metadata(),
        )
        took_ms = (time.perf_counter() - started) * 1000
        self.figures.record_search(took_ms, time.monotonic())
        items = [
            {
                "item_id": h.item_id,
                "title": h.title,
                "price": h.price if h.HasField("price") else None,
                "reason": h.reason,
                "score": round(h.score, 3),
            }
            for h in reply.items
        ]
        return {
            "query": query,
            "items": items,
            "source": reply.source,
            "fallback": reply.fallback,
            "catalogue_products": reply.catalogue_products,
            "search_ms": round(took_ms, 2),
        }

    async def describe(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`items` with each one's title and price from the catalogue in Redis, where it has them."""
        if not items:
            return items
        from streamrec.features.catalog_store import catalog_keys
        from streamrec.protos import catalog_pb2

        [raw] = await self.redis.execute(
            [("HMGET", catalog_keys(self.project).products, *(i["item_id"] for i in items))]
        )
        for item, value in zip(items, raw, strict=True):
            if value:
                product = catalog_pb2.Product.FromString(value)
                item["title"] = product.title
                item["price"] = product.price if product.HasField("price") else None
        return items

    def _training_popular(self) -> list[str]:
        """The served model's most frequent training items, when its registry is on this machine (`streamrec up`)."""
        if not self.targets.registry:
            return []
        try:
            registry = Path(self.targets.registry)
            return load_manifest(registry / current_version(registry)).popular_items[:CATALOGUE_SIZE]
        except (ArtifactError, OSError):
            return []

    async def session(self, session_id: str) -> dict[str, Any]:
        raw = await self.redis.get(session_key(self.project, session_id))
        started = time.perf_counter()
        reply = await self.recommend(session_id, RECOMMEND_K)
        view = session_view(session_id, raw, reply, (time.perf_counter() - started) * 1000)
        await self.describe(view["recommendations"])
        return view

    async def click(self, session_id: str, item_id: str) -> dict[str, Any]:
        """Produce a click, wait for its refresh to be visible, and return the session's new view."""
        event = click(session_id, item_id)
        sent_ms = time.time() * 1000
        visible = self.tracker.expect(session_id, event.event_id, sent_ms)
        await asyncio.get_running_loop().run_in_executor(None, self._send, session_id, event.to_bytes())
        self.figures.storefront_clicks += 1
        try:
            freshness_ms: float | None = await asyncio.wait_for(asyncio.shield(visible), self.click_timeout_s)
        except TimeoutError:
            freshness_ms = None
        view = await self.session(session_id)
        return {"event_id": event.event_id, "freshness_ms": _round(freshness_ms), **view}

    def _send(self, session_id: str, value: bytes) -> None:
        """Blocking (runs in the executor): connect once, produce, wait for the broker's ack."""
        if self._producer is None:
            security = dict(self.targets.credentials.kafka)
            self._producer = EventProducer(self.targets.kafka, self.targets.topic, **security)
        failures = len(self._producer.failed)
        self._producer.send(session_id, value)
        if self._producer.flush(10) or len(self._producer.failed) > failures:
            raise OSError(f"click not delivered: {self._producer.failed[failures:] or 'timed out'}")

    def close(self) -> None:
        """Deliver what is queued; the producer's threads end when it is released (it has no close())."""
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


@dataclass(frozen=True)
class ListLabel:
    """What the page says a list is: `kind` "model" (every item from the session model), "mixed" (the model's
    items topped up with popular ones) or "popular" (a popularity list, fallback or not), and the words shown."""

    kind: str
    text: str


def from_model(item: pb.ScoredItem) -> bool:
    """Whether the scorer says this item came from the session model (its reason), not from popularity."""
    return item.reason in MODEL_REASONS


def list_label(reply: pb.RecommendResponse, has_history: bool) -> ListLabel:
    """The honest label of a Recommend answer: `fallback`, or no item of the model's, makes it a popular list."""
    modelled = sum(from_model(item) for item in reply.items)
    if reply.fallback or modelled == 0:
        why = "the model did not rank this session" if has_history else "no views or clicks yet"
        return ListLabel("popular", f"popular items (fallback: {why})")
    if modelled < len(reply.items):
        popular = len(reply.items) - modelled
        return ListLabel("mixed", f"session model, topped up with {popular} popular item{'s' * (popular > 1)}")
    return ListLabel("model", "session model")


def session_view(
    session_id: str, raw_state: bytes | str | None, reply: pb.RecommendResponse, recommend_ms: float
) -> dict[str, Any]:
    """The page's view of a session: its state as the worker wrote it to Redis, and the scorer's answer."""
    state = SessionState.from_json(raw_state) if raw_state else SessionState()
    label = list_label(reply, bool(state.items))
    return {
        "session_id": session_id,
        "history": state.items[-20:],
        "events": state.events,
        "last_click": state.items[-1] if state.items else None,  # items: views and clicks, oldest first
        "last_event_id": state.last_event_id,
        "recommendations": [
            {"item_id": i.item_id, "score": round(i.score, 4), "reason": i.reason, "from_model": from_model(i)}
            for i in reply.items
        ],
        "label": {"kind": label.kind, "text": label.text},
        "source": reply.source,
        "fallback": reply.fallback,
        "model_version": reply.model_version,
        "state_age_ms": reply.state_age_ms,
        "recommend_ms": round(recommend_ms, 2),
    }


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(ID_PATTERN.match(value))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
