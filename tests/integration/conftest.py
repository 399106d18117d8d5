"""Integration fixtures: broker, Redis and scorer per test; workers are started (and killed) by the tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.devstack.stack import StackOptions, create_topics, service_env, start_scorer
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
