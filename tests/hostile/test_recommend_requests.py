"""Hostile Recommend requests against the validation rules and a real in-process scorer: every answer is OK or
INVALID_ARGUMENT with a message naming the field, never INTERNAL or UNKNOWN; an oversize request is refused by
gRPC itself (RESOURCE_EXHAUSTED) before any handler runs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamrec.config import CoreSettings
from streamrec.features.session_store import SessionState, session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.serving import metrics
from streamrec.serving.config import MAX_ID_CHARS, MAX_IDS, MAX_K, ServingSettings
from streamrec.serving.server import Scorer, create_server
from streamrec.serving.validation import recommend_problem
from streamrec.stream.adapters import read_scored_items

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MAX_MESSAGE_BYTES = 64 * 1024  # small, so that an oversize request is cheap to build
SEEDED = [f"s{n}" for n in range(5)]
RECOMMEND = "/streamrec.v1.Recommender/Recommend"


def ids(known: list[str]) -> st.SearchStrategy[str]:
    """Known ids, any Unicode text across the 256-character limit, and the empty string."""
    return st.one_of(st.sampled_from(known), st.text(max_size=8), st.text(min_size=250, max_size=300), st.just(""))


@st.composite
def requests(draw: st.DrawFn, items: list[str]) -> pb.RecommendRequest:
    many = st.integers(MAX_IDS - 2, MAX_IDS + 2).map(lambda n: [f"x{i}" for i in range(n)])  # around the limit
    excludes = draw(st.one_of(st.lists(ids(items), max_size=12), many))
    return pb.RecommendRequest(
        session_id=draw(ids(SEEDED)),
        user_id=draw(st.one_of(st.just(""), ids(["u1"]))),
        k=draw(st.one_of(st.integers(-2, 25), st.integers(MAX_K - 1, MAX_K + 1), st.integers(-(2**31), 2**31 - 1))),
        context=pb.PageContext(page=draw(ids(["home", "product"])), item_id=draw(ids(items))),
        exclude_item_ids=excludes,
    )


def oracle(request: pb.RecommendRequest) -> str | None:
    """Which field the rules of docs/architecture.md reject first, or None (written apart from validation.py)."""
    checks = [
        ("session_id", not request.session_id or len(request.session_id) > MAX_ID_CHARS),
        ("user_id", len(request.user_id) > MAX_ID_CHARS),
        ("k", not 1 <= request.k <= MAX_K),
        ("context.item_id", len(request.context.item_id) > MAX_ID_CHARS),
        ("context.page", len(request.context.page) > MAX_ID_CHARS),
        (
            "exclude_item_ids",
            len(request.exclude_item_ids) > MAX_IDS
            or any(not x or len(x) > MAX_ID_CHARS for x in request.exclude_item_ids),
        ),
    ]
    return next((name for name, bad in checks if bad), None)


@dataclass
class LiveScorer:
    address: str
    items: list[str] = field(repr=False)
    stub: recommender_pb2_grpc.RecommenderStub = field(repr=False)
    channel: grpc.Channel = field(repr=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints fixtures of failing examples
        printer.text(f"LiveScorer({self.address})")


@pytest.fixture(scope="module")
def live_scorer(redis_url: str, trained_registry: Path) -> Iterator[LiveScorer]:
    """`create_server` on its own event loop in a background thread; the tests call it with a blocking stub."""
    project = "hostile"
    client = redis.Redis.from_url(redis_url)
    items = json.loads(next(trained_registry.glob("v*/items.json")).read_text())[1:]
    for n, sid in enumerate(SEEDED):
        state = SessionState(
            items=items[n : n + 3],
            purchases=items[n + 3 : n + 4],
            last_event_id=f"e{n}",
            updated_ms=int(time.time() * 1000),
        )
        client.set(session_key(project, sid), state.to_json())
    client.close()
    core = CoreSettings(redis_url=redis_url, project=project)
    serving = ServingSettings(
        core=core, port=0, registry=trained_registry, reload_interval_s=0, max_message_bytes=MAX_MESSAGE_BYTES
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="hostile-scorer", daemon=True)
    thread.start()
    scorer: Scorer = asyncio.run_coroutine_threadsafe(create_server(serving), loop).result(60)
    address = f"127.0.0.1:{scorer.port}"
    channel = grpc.insecure_channel(address)
    try:
        yield LiveScorer(address, items, recommender_pb2_grpc.RecommenderStub(channel), channel)
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(scorer.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@settings(max_examples=300, deadline=None)
@given(requests(items=["i1", "i2"]))
def test_validation_names_the_first_bad_field_or_accepts(request: pb.RecommendRequest) -> None:
    problem = recommend_problem(request)
    first_bad = oracle(request)
    if first_bad is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith((first_bad, f"an entry of {first_bad}")), (first_bad, problem)


def answer(live: LiveScorer, request: pb.RecommendRequest) -> tuple[grpc.StatusCode, str, pb.RecommendResponse | None]:
    try:
        reply = live.stub.Recommend(request, timeout=10)
    except grpc.RpcError as exc:  # the client edge: a status is what we are testing
        return exc.code(), exc.details() or "", None
    return grpc.StatusCode.OK, "", reply


@pytest.mark.integration
@PROPERTY
@given(data=st.data())
def test_every_recommend_is_ok_or_invalid_argument_with_a_message(live_scorer: LiveScorer, data: st.DataObject) -> None:
    request = data.draw(requests(items=live_scorer.items[:40]), label="request")
    code, details, reply = answer(live_scorer, request)
    problem = recommend_problem(request)
    if problem is not None:
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, problem)
        return
    assert code == grpc.StatusCode.OK, (code, details)
    assert reply is not None
    shown = [item.item_id for item in reply.items]
    excluded = set(request.exclude_item_ids) | {request.context.item_id}
    assert len(shown) <= request.k and len(set(shown)) == len(shown)
    assert not excluded & set(shown)


@pytest.mark.integration
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=512))
@example(raw=b"\x0a\x02\xff\xfe")  # session_id with malformed UTF-8
@example(raw=b"\x0a\x02s1\x18\x05\x2a\x01\xc0")  # a valid request, then an exclude id that is not UTF-8
@example(raw=b"\x18")  # a truncated varint
def test_undecodable_request_bytes_are_invalid_argument(live_scorer: LiveScorer, raw: bytes) -> None:
    """What a broken or hostile client can put on the wire: gRPC hands the bytes to protobuf, and a request that
    does not parse is the caller's error (INVALID_ARGUMENT), not the scorer's (UNKNOWN)."""
    call = live_scorer.channel.unary_unary(RECOMMEND)  # no serializer: the bytes go out as they are
    try:
        call(raw, timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details, (code, details)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.integration
def test_huge_ids_under_the_size_limit_are_invalid_argument(live_scorer: LiveScorer) -> None:
    for request, name in [
        (pb.RecommendRequest(session_id="s" * 50_000, k=5), "session_id"),
        (pb.RecommendRequest(session_id="s1", k=5, exclude_item_ids=["x" * 40_000]), "exclude_item_ids"),
        (pb.RecommendRequest(session_id="s1", k=5, context=pb.PageContext(item_id="i" * 40_000)), "context.item_id"),
    ]:
        code, details, _ = answer(live_scorer, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and name in details, (code, details)


def _handled() -> float:
    """Recommend and Score calls that reached a handler (by any status), from the in-process scorer's metrics."""
    total = 0.0
    for family in metrics.REGISTRY.collect():
        if family.name == "streamrec_scorer_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


@pytest.mark.integration
def test_oversize_requests_are_refused_by_grpc_before_any_handler(live_scorer: LiveScorer) -> None:
    handled = _handled()
    big_recommend = pb.RecommendRequest(session_id="s" * (MAX_MESSAGE_BYTES + 1), k=5)
    code, details, _ = answer(live_scorer, big_recommend)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details, (code, details)

    history = pb.SessionHistory(session_id="s1", item_ids=["i" * 200] * 400)  # ~80 KB in one Score call
    with pytest.raises(grpc.RpcError) as refused:
        live_scorer.stub.Score(pb.ScoreRequest(k=5, sessions=[history]), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert _handled() == handled  # neither reached the scorer's code
    code, _, reply = answer(live_scorer, pb.RecommendRequest(session_id="s1", k=5))
    assert code == grpc.StatusCode.OK and reply is not None and len(reply.items) == 5  # and it serves on


@pytest.mark.integration
def test_columnar_and_itemwise_score_answers_hold_the_same_lists(live_scorer: LiveScorer) -> None:
    """The worker asks for columnar answers; a scorer that predates them answers item by item: it reads both."""
    items = live_scorer.items
    sessions = [pb.SessionHistory(session_id=sid, item_ids=items[n : n + 3]) for n, sid in enumerate(["a", "b"])]
    itemwise = live_scorer.stub.Score(pb.ScoreRequest(k=5, sessions=sessions), timeout=10)
    columnar = live_scorer.stub.Score(pb.ScoreRequest(k=5, sessions=sessions, columnar=True), timeout=10)
    assert all(len(r.items) == 5 and not r.item_ids for r in itemwise.results)
    assert all(len(r.item_ids) == 5 and len(r.scores) == 5 and not r.items for r in columnar.results)
    as_read = [[read_scored_items(r) for r in reply.results] for reply in (itemwise, columnar)]
    assert as_read[0] == as_read[1] and len(as_read[0]) == 2
