"""Shared fixtures: a small trained model, and real services (Apache Kafka, redis-server, our own processes).

Everything is started on free ports and stopped again when the fixture ends, whatever the test's outcome.
"""

from __future__ import annotations

import faulthandler
import functools
import os
import shutil
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.redis_cluster import RedisClusterInfo, start_redis_cluster
from streamrec.devstack.stack import StackAddresses, StackOptions, start_stack

TEST_SESSIONS = 2000  # synthetic sessions the shared test model is trained on
TEST_EPOCHS = 4
# pytest-timeout (600 s, in pyproject.toml) fails a test by a signal, which only takes effect when the main thread
# runs Python code again; a test stuck inside C code would hold CI until its own limit. This second, harder limit
# runs on faulthandler's C thread: it prints every thread's stack and ends the run.
HARD_LIMIT_S = 900


@functools.cache
def real_stderr_fd() -> int:
    """A copy of the real stderr, first taken between tests, when pytest's capture is not on it."""
    return os.dup(sys.__stderr__.fileno())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True, file=real_stderr_fd())
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one GRU4Rec version trained on the seeded synthetic clickstream."""
    from streamrec.training.synthetic import SyntheticConfig, generate
    from streamrec.training.train import train_session_model

    registry = tmp_path_factory.mktemp("registry")
    train_session_model(generate(SyntheticConfig(n_sessions=TEST_SESSIONS)), registry, epochs=TEST_EPOCHS)
    return registry


@pytest.fixture
def registry_copy(trained_registry: Path, tmp_path: Path) -> Path:
    """A private copy of the trained registry for tests that publish or damage versions."""
    target = tmp_path / "registry"
    shutil.copytree(trained_registry, target)
    return target


@pytest.fixture(scope="module")
def streamrec_stack(tmp_path_factory: pytest.TempPathFactory, trained_registry: Path) -> Iterator[StackAddresses]:
    """The whole local stack: broker, Redis, scorer and one worker, with a per-module project namespace."""
    state_dir = tmp_path_factory.mktemp("stack")
    options = StackOptions(project=f"t{uuid.uuid4().hex[:8]}", registry=trained_registry)
    with LocalStack(state_dir=state_dir) as stack:
        yield start_stack(stack, options)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session; tests namespace their keys with a unique project."""
    with LocalStack(state_dir=tmp_path_factory.mktemp("redis")) as stack:
        yield stack.start_redis()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterInfo]:
    """A real Redis Cluster on loopback for a module: 3 primaries, each with a replica."""
    with LocalStack(state_dir=tmp_path_factory.mktemp("redis-cluster")) as stack:
        yield start_redis_cluster(stack, primaries=3, replicas_per_primary=1)


@pytest.fixture
def project() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
