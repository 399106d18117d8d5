"""Integration fixtures: broker, Redis and scorer per test, in-process scorers on a real socket; workers are started
(and killed) by the tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from streamrec.config import CoreSettings
from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.devstack.stack import StackOptions, create_topics, service_env, start_scorer
from streamrec.protos import recommender_pb2_grpc
from streamrec.serving.config import ServingSettings
from streamrec.serving.server import Scorer, create_server
from tests.integration.harness import Services


@pytest.fixture
def services(tmp_path: Path, trained_registry: Path) -> Iterator[Services]:
    """A fresh broker, Redis and scorer for one test (workers are the test's business)."""
    project = f"t{uuid.uuid4().hex[:8]}"
    with LocalStack(state_dir=tmp_path / "stack") as stack:
        kafka, redis_url = stack.start_broker(), stack.start_redis()
        create_topics(kafka, 4)
        port = free_port()
        env = service_env(kafka, redis_url, f"127.0.0.1:{port}", trained_registry, StackOptions(project=project))
        start_scorer(stack, env, f"127.0.0.1:{port}")
        yield Services(stack, kafka, redis_url, env, project)


def settings(redis_url: str, project: str, registry: Path, **overrides: Any) -> ServingSettings:
    return ServingSettings(
        core=CoreSettings(redis_url=redis_url, project=project),
        port=0,
        registry=registry,
        reload_interval_s=0.1,
        **overrides,
    )


@pytest.fixture
async def scorer_for(redis_url: str, project: str, registry_copy: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Scorer] = []

    async def start(**overrides: Any) -> tuple[Scorer, recommender_pb2_grpc.RecommenderStub]:
        scorer = await create_server(
            settings(overrides.pop("redis_url", redis_url), project, registry_copy, **overrides)
        )
        started.append(scorer)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{scorer.port}")
        return scorer, recommender_pb2_grpc.RecommenderStub(channel)

    yield start
    for scorer in started:
        await scorer.stop(0)
