"""The hot path through real sockets and a real Redis: lists refreshed through Score by the worker's own client and
stored by its own writer are answered as stored bytes, and those bytes are the answer the built path gives."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from streamrec.artifact import current_version, load_vocabulary
from streamrec.features.session_store import Recommendations, SessionState, session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis import connect
from streamrec.serving import metrics
from streamrec.stream.adapters import GrpcScorer, RedisStateStore
from streamrec.stream.aggregates import AppliedBatch

pytestmark = pytest.mark.integration
SESSIONS = 12
K = 20


def prebuilt_answers() -> float:
    return metrics.REGISTRY.get_sample_value("streamrec_scorer_prebuilt_answers_total") or 0.0


def seed_states(redis_url: str, project: str, vocabulary: list[str]) -> dict[str, SessionState]:
    now = int(time.time() * 1000)
    states = {}
    client = redis.Redis.from_url(redis_url)
    for n in range(SESSIONS):
        items = [vocabulary[1 + (n * 7 + j) % (len(vocabulary) - 1)] for j in range(3)]
        purchases = [vocabulary[1 + (n * 7 + 5) % (len(vocabulary) - 1)]] if n % 2 else []
        state = SessionState(items=items, purchases=purchases, last_event_id=f"e-{n}", updated_ms=now)
        states[f"s{n}"] = state
        client.set(session_key(project, f"s{n}"), state.to_json())
    client.close()
    return states


async def refresh_as_the_worker(address: str, redis_url: str, project: str, states: dict[str, SessionState]) -> int:
    scorer = GrpcScorer(address, timeout_s=10)
    refresh = await scorer.score([(sid, s.items, s.purchases, s.last_event_id) for sid, s in states.items()], K)
    await scorer.close()
    recs = {
        sid: Recommendations(
            0,
            refresh.lists[sid],
            refresh.model_version,
            states[sid].last_event_id,
            0,
            0,
            Recommendations.encode_wire(refresh.wire.get(sid, b"")),
        )
        for sid in states
    }
    store = RedisStateStore(connect(redis_url), project)
    await store.write({}, recs, AppliedBatch())
    await store.client.aclose()
    return len(refresh.wire)


def without_age(reply: pb.RecommendResponse) -> pb.RecommendResponse:
    assert reply.state_age_ms >= 0
    copy = pb.RecommendResponse()
    copy.CopyFrom(reply)
    copy.state_age_ms = 0
    return copy


@pytest.fixture
async def refreshed(
    scorer_for: Callable[..., Any], redis_url: str, project: str, registry_copy: Path
) -> tuple[dict[str, SessionState], recommender_pb2_grpc.RecommenderStub]:
    """Sessions refreshed through a scorer that serves stored answers, and that scorer's stub."""
    states = seed_states(redis_url, project, load_vocabulary(registry_copy / current_version(registry_copy)))
    hot, stub = await scorer_for(prebuilt_answers=True)
    assert await refresh_as_the_worker(f"127.0.0.1:{hot.port}", redis_url, project, states) == SESSIONS
    return states, stub


async def test_stored_answers_serve_as_bytes_and_equal_the_built_answers(
    scorer_for: Callable[..., Any], refreshed: tuple[dict[str, SessionState], recommender_pb2_grpc.RecommenderStub]
) -> None:
    states, hot_stub = refreshed
    _, built_stub = await scorer_for(prebuilt_answers=False)

    requests = []
    for sid in states:
        requests.append(pb.RecommendRequest(session_id=sid, k=K))
        requests.append(pb.RecommendRequest(session_id=sid, k=K - 5))
    for sid in list(states)[:4]:  # a product page and excludes: the next entries take their places
        first = await built_stub.Recommend(pb.RecommendRequest(session_id=sid, k=K), timeout=5)
        page = pb.PageContext(page="product", item_id=first.items[0].item_id)
        requests.append(
            pb.RecommendRequest(session_id=sid, k=8, context=page, exclude_item_ids=[first.items[3].item_id])
        )

    before = prebuilt_answers()
    for request in requests:
        stored = await hot_stub.Recommend(request, timeout=5)
        built = await built_stub.Recommend(request, timeout=5)
        assert stored.source == "refreshed" and not stored.fallback and stored.cause_event_id
        assert len(stored.items) == request.k
        assert without_age(stored) == without_age(built), request.session_id
        excluded = set(request.exclude_item_ids) | {request.context.item_id} | set(states[request.session_id].purchases)
        assert not excluded & {i.item_id for i in stored.items}
    assert prebuilt_answers() - before == len(requests)  # every one of the hot scorer's answers, none of the other's


async def test_a_session_that_moved_on_is_answered_by_the_model_not_the_stored_bytes(
    refreshed: tuple[dict[str, SessionState], recommender_pb2_grpc.RecommenderStub], redis_url: str, project: str
) -> None:
    states, stub = refreshed
    moved = states["s0"]
    moved.items.append(moved.items[0])
    moved.last_event_id = "e-0-next"  # a newer event applied, its refresh not yet written
    client = redis.Redis.from_url(redis_url)
    client.set(session_key(project, "s0"), moved.to_json())
    client.close()

    before = prebuilt_answers()
    reply = await stub.Recommend(pb.RecommendRequest(session_id="s0", k=K), timeout=5)
    assert reply.source == "inline" and not reply.fallback
    assert prebuilt_answers() == before
