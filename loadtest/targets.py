"""What a load test runs against: the local stack it starts itself, or a running stack whose addresses it is given.

A local stack needs a model. The scenario names a registry; when it is empty, a model is trained into it
once (on the scenario's `train_dataset`, else on the synthetic clickstream) and reused by later runs, so
the cost of training is paid once and never lands inside a measurement.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streamrec.artifact import current_version, list_versions
from streamrec.config import EVENTS_TOPIC
from streamrec.errors import ConfigError
from streamrec.loadtest.scenario import ModelSection, TargetSection

DEFAULT_REGISTRY = Path(".streamrec/loadtest/registry-synthetic")
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    kind: str
    kafka: str
    redis: str
    grpc: str
    project: str
    topic: str = EVENTS_TOPIC
    model_version: str = ""
    processes: dict[str, int] = field(default_factory=dict)  # name -> pid, for a local stack (CPU accounting)


def prepare_registry(model: ModelSection, override: Path | None = None, log: Log = _stderr) -> Path:
    """The registry to serve from, trained first when it holds no version."""
    registry = override or model.registry or DEFAULT_REGISTRY
    if list_versions(registry):
        return registry
    if model.train_dataset:
        from streamrec.training.datasets import load_dataset
        from streamrec.training.pipeline import train_on_dataset

        log(f"no model in {registry}: training {model.train_model} on {model.train_dataset} (once)")
        dataset = load_dataset(model.train_dataset)
        train_on_dataset(dataset, model.train_model, registry, epochs=model.train_epochs, progress=False, log=log)
    else:
        from streamrec.training.synthetic import SyntheticConfig, generate
        from streamrec.training.train import train_session_model

        log(f"no model in {registry}: training one on the synthetic clickstream (once)")
        if model.train_epochs:
            train_session_model(generate(SyntheticConfig()), registry, epochs=model.train_epochs)
        else:
            train_session_model(generate(SyntheticConfig()), registry)
    return registry


@contextmanager
def open_target(section: TargetSection, registry: Path | None = None, log: Log = _stderr) -> Iterator[Target]:
    """Yield the target's addresses; a local stack is started here and stopped when the block ends."""
    if section.kind == "given":
        yield _given(section)
        return
    from streamrec.devstack.localstack import LocalStack
    from streamrec.devstack.stack import StackOptions, start_stack

    served = prepare_registry(section.model, registry, log)
    options = StackOptions(
        project=f"lt{uuid.uuid4().hex[:8]}", partitions=section.partitions, registry=served, workers=section.workers
    )
    log(f"starting the local stack ({section.workers} worker(s), {section.partitions} partitions, model {served})")
    with LocalStack() as stack:
        addresses = start_stack(stack, options)
        yield Target(
            "local",
            addresses.kafka,
            addresses.redis,
            addresses.grpc,
            addresses.project,
            model_version=current_version(served),
            processes=addresses.processes,
        )


def _given(section: TargetSection) -> Target:
    from streamrec.channels import scorer_addresses
    from streamrec.devstack.cli_args import Endpoint, read_stack, require_reachable
    from streamrec.devstack.stack import scorer_ready

    if section.stack_dir is not None:
        found = read_stack(section.stack_dir)
        target = Target("given", found.kafka, found.redis, found.grpc, found.project, processes=found.processes)
    else:
        assert section.kafka and section.redis and section.grpc and section.project  # checked by the scenario
        target = Target("given", section.kafka, section.redis, section.grpc, section.project)
    require_reachable(Endpoint.broker(target.kafka), Endpoint.redis(target.redis), Endpoint.scorer(target.grpc))
    not_serving = [address for address in scorer_addresses(target.grpc) if not scorer_ready(address)]
    if not_serving:
        raise ConfigError(f"the scorer at {', '.join(not_serving)} is not SERVING")
    return target
