"""The scorer's behaviour through a real gRPC socket and a real Redis: hot reload, shedding, deadlines,
degraded answers without Redis, graceful drain."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from streamrec.artifact import load_manifest, new_version_name, publish, set_current
from streamrec.devstack.localstack import free_port
from streamrec.features.session_store import SessionState, session_key
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.serving.server import Scorer, create_server
from tests.integration.conftest import settings

pytestmark = pytest.mark.integration


def seed_session(redis_url: str, project: str, session_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    state = SessionState(items=["i00010", "i00011"], last_event_id="e1", updated_ms=int(time.time() * 1000))
    client.set(session_key(project, session_id), state.to_json())
    client.close()


def republish(registry: Path) -> str:
    """Publish a copy of the newest version under a new name and make it CURRENT."""
    source = registry / sorted(p.name for p in registry.iterdir() if p.name.startswith("v"))[-1]
    manifest = dataclasses.replace(load_manifest(source), version=new_version_name(), files={})
    publish(registry, {"model.onnx": source / "model.onnx", "items.json": source / "items.json"}, manifest)
    return manifest.version


def slow_down(scorer: Scorer, seconds: float) -> None:
    runtime = scorer.service.holder.runtime
    original: Callable[..., Any] = runtime.candidates

    def slow(*args: Any) -> Any:
        time.sleep(seconds)
        return original(*args)

    runtime.candidates = slow  # type: ignore[method-assign]


async def test_hot_swap_under_load_fails_no_request_and_rollback_works(
    scorer_for: Callable[..., Any], redis_url: str, project: str, registry_copy: Path
) -> None:
    scorer, stub = await scorer_for()
    seed_session(redis_url, project, "s1")
    old = scorer.service.holder.runtime.version
    versions: Counter[str] = Counter()
    failures: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                reply = await stub.Recommend(pb.RecommendRequest(session_id="s1", k=10), timeout=5)
                versions[reply.model_version] += 1
            except grpc.aio.AioRpcError as exc:
                failures.append(exc.code().name)

    clients = [asyncio.create_task(client()) for _ in range(8)]
    await asyncio.sleep(0.3)
    new = republish(registry_copy)
    deadline = time.monotonic() + 20
    while versions[new] < 50 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*clients)
    assert failures == [] and versions[old] > 0 and versions[new] >= 50

    set_current(registry_copy, old)  # rollback
    deadline = time.monotonic() + 10
    while (await stub.Info(pb.InfoRequest(), timeout=5)).model_version != old and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await stub.Info(pb.InfoRequest(), timeout=5)).model_version == old


async def test_a_corrupt_version_is_rejected_and_the_old_one_keeps_serving(
    scorer_for: Callable[..., Any], registry_copy: Path
) -> None:
    scorer, stub = await scorer_for()
    old = scorer.service.holder.runtime.version
    new = republish(registry_copy)
    (registry_copy / new / "model.onnx").write_bytes(b"not the published bytes")
    assert not await scorer.service.holder.check_for_update()
    info = await stub.Info(pb.InfoRequest(), timeout=5)
    assert info.model_version == old and list(info.providers) == ["CPUExecutionProvider"]


async def test_overload_is_shed_with_resource_exhausted(
    scorer_for: Callable[..., Any], redis_url: str, project: str
) -> None:
    scorer, stub = await scorer_for(max_in_flight=2)
    seed_session(redis_url, project, "s1")
    slow_down(scorer, 0.2)
    calls = [stub.Recommend(pb.RecommendRequest(session_id="s1", k=5), timeout=10) for _ in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    codes = Counter("OK" if isinstance(r, pb.RecommendResponse) else r.code().name for r in results)  # type: ignore[union-attr]
    assert codes["OK"] >= 2 and codes["RESOURCE_EXHAUSTED"] >= 1 and sum(codes.values()) == 10
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert "limit of 2 concurrent requests" in (errors[0].details() or "")


async def test_deadline_is_honoured(scorer_for: Callable[..., Any], redis_url: str, project: str) -> None:
    scorer, stub = await scorer_for()
    seed_session(redis_url, project, "s1")
    slow_down(scorer, 0.5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Recommend(pb.RecommendRequest(session_id="s1", k=5), timeout=0.05)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_without_redis_answers_degrade_to_the_snapshot_and_say_so(scorer_for: Callable[..., Any]) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    _, stub = await scorer_for(redis_url=dead_redis)
    reply = await stub.Recommend(pb.RecommendRequest(session_id="s1", k=5), timeout=5)
    assert reply.fallback and reply.source == "popularity" and len(reply.items) == 5
    assert not (await stub.Info(pb.InfoRequest(), timeout=5)).redis_ok
    from streamrec.serving import metrics

    assert metrics.REGISTRY.get_sample_value("streamrec_scorer_fallbacks_total", {"cause": "redis_unavailable"})


async def test_graceful_drain_lets_in_flight_calls_finish(
    scorer_for: Callable[..., Any], redis_url: str, project: str
) -> None:
    scorer, stub = await scorer_for()
    seed_session(redis_url, project, "s1")
    slow_down(scorer, 0.4)
    in_flight = asyncio.ensure_future(stub.Recommend(pb.RecommendRequest(session_id="s1", k=5), timeout=10))
    await asyncio.sleep(0.1)
    await scorer.stop(grace_s=5)
    reply = await in_flight
    assert len(reply.items) == 5 and not reply.fallback


async def test_a_version_with_a_ranker_is_served_in_two_stages(
    redis_url: str, project: str, registry_copy: Path
) -> None:
    from streamrec.training.ranker import synthetic_dataset, train_ranker
    from streamrec.training.ranker_model import RankerConfig

    source = registry_copy / sorted(p.name for p in registry_copy.iterdir() if p.name.startswith("v"))[-1]
    train_ranker(source, synthetic_dataset(1500, 500), registry_copy, RankerConfig(epochs=2), log=lambda _: None)
    scorer = await create_server(settings(redis_url, project, registry_copy))
    try:
        seed_session(redis_url, project, "s1")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{scorer.port}") as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            assert (await stub.Info(pb.InfoRequest(), timeout=5)).ranker
            reply = await stub.Recommend(pb.RecommendRequest(session_id="s1", k=10), timeout=5)
        assert reply.source == "inline" and len(reply.items) == 10
        assert {item.reason for item in reply.items} == {"ranked for this session"}
    finally:
        await scorer.stop(0)
