"""A running stack with /metrics on the worker and the scorer, and the Targets that observe reads it through."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.devstack.stack import StackAddresses, StackOptions, start_stack
from streamrec.observe.config import Targets, targets_from_stack


@dataclass
class ObservedStack:
    stack: LocalStack
    addresses: StackAddresses
    targets: Targets


@pytest.fixture(scope="module")
def observed_stack(tmp_path_factory: pytest.TempPathFactory, trained_registry: Path) -> Iterator[ObservedStack]:
    """Broker, Redis, scorer and one worker, each service with its Prometheus endpoint on a free port.

    The ports go in through the environment the services inherit; a stack that assigns its own (and writes
    them to stack.json as `metrics`) wins, and then those are the ones observed.
    """
    worker_port, scorer_port = free_port(), free_port()
    options = StackOptions(project=f"t{uuid.uuid4().hex[:8]}", registry=trained_registry)
    with LocalStack(state_dir=tmp_path_factory.mktemp("observed")) as stack, pytest.MonkeyPatch.context() as env:
        env.setenv("STREAMREC_STREAM_METRICS_PORT", str(worker_port))
        env.setenv("STREAMREC_SERVING_METRICS_PORT", str(scorer_port))
        addresses = start_stack(stack, options)
        env.undo()
        targets = targets_from_stack(dataclasses.asdict(addresses))
        if not targets.worker_metrics:
            targets = dataclasses.replace(
                targets, worker_metrics=(f"127.0.0.1:{worker_port}",), scorer_metrics=(f"127.0.0.1:{scorer_port}",)
            )
        yield ObservedStack(stack, addresses, targets)
