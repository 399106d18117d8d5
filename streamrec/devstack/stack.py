"""The whole local streamrec as one unit: broker, Redis, a model, the scorer and the worker, ready to use."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamrec.artifact import list_versions
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.errors import StackError

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"


@dataclass
class StackAddresses:
    kafka: str
    redis: str
    grpc: str
    registry: str
    project: str
    pid: int
    state_dir: str
    processes: dict[str, int]
    metrics: dict[str, str] = field(default_factory=dict)  # service name -> host:port of its Prometheus /metrics
    web: str = ""  # URL of the live page and storefront, when `streamrec up` serves them

    def write(self, state_dir: Path) -> Path:
        path = state_dir / STACK_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, state_dir: Path) -> StackAddresses:
        return cls(**json.loads((state_dir / STACK_FILE).read_text()))


@dataclass(frozen=True)
class StackOptions:
    project: str = "streamrec"
    partitions: int = 4
    session_timeout_s: float = 6.0  # Kafka's group.min.session.timeout.ms
    registry: Path | None = None  # default: STATE_DIR/registry, trained on synthetic data when empty
    train_sessions: int = 4000
    train_epochs: int | None = None
    workers: int = 1
    processing_guarantee: str = "at_least_once"  # the worker's (StreamSettings.processing_guarantee)
    feast_apply: bool = False  # `up` and `demo` register the Feast repository; most tests need not pay ~10 s


def ensure_model(registry: Path, options: StackOptions) -> None:
    if list_versions(registry):
        return
    from streamrec.training.synthetic import SyntheticConfig, generate
    from streamrec.training.train import train_session_model

    log.info("no model in %s: training one on synthetic sessions", registry)
    events = generate(SyntheticConfig(n_sessions=options.train_sessions))
    if options.train_epochs:
        train_session_model(events, registry, epochs=options.train_epochs)
    else:
        train_session_model(events, registry)


def service_env(kafka: str, redis_url: str, grpc_address: str, registry: Path, options: StackOptions) -> dict[str, str]:
    """The environment our worker and scorer read their settings from (see stream/ and serving/ config.py)."""
    return {
        "STREAMREC_PROJECT": options.project,
        "STREAMREC_KAFKA_BOOTSTRAP": kafka,
        "STREAMREC_REDIS_URL": redis_url,
        "STREAMREC_SCORER_ADDRESS": grpc_address,
        "STREAMREC_TOPIC_PARTITIONS": str(options.partitions),
        "STREAMREC_SERVING_REGISTRY": str(registry),
        "STREAMREC_STREAM_SESSION_TIMEOUT_S": str(options.session_timeout_s),
        "STREAMREC_STREAM_PROCESSING_GUARANTEE": options.processing_guarantee,
    }


def start_stack(stack: LocalStack, options: StackOptions = StackOptions()) -> StackAddresses:
    """Start everything into `stack` (which stops it all again) and return the addresses."""
    registry = options.registry or stack.state_dir / "registry"
    kafka = stack.start_broker()
    redis_url = stack.start_redis()
    create_topics(kafka, options.partitions)
    ensure_model(registry, options)
    if options.feast_apply:
        apply_feature_repo(options.project, redis_url, stack.state_dir / "feast")
    grpc_port = free_port()
    grpc_address = f"127.0.0.1:{grpc_port}"
    env = service_env(kafka, redis_url, grpc_address, registry, options)
    metrics = {name: f"127.0.0.1:{free_port()}" for name in ["scorer", *worker_names(options.workers)]}
    scorer_env = {**env, "STREAMREC_SERVING_METRICS_PORT": metrics["scorer"].rsplit(":", 1)[1]}
    stack.python_module(
        "scorer", ["serve", "--port", str(grpc_port)], grpc_address, lambda: scorer_ready(grpc_address), env=scorer_env
    )
    for name in worker_names(options.workers):
        worker_env = {
            **env,
            "STREAMREC_STREAM_DATA_DIR": str(stack.state_dir / name),
            "STREAMREC_STREAM_METRICS_PORT": metrics[name].rsplit(":", 1)[1],
        }
        stack.python_module(name, ["worker"], kafka, lambda: True, env=worker_env)
    wait_worker_ready(stack, kafka, redis_url, options.project)
    return StackAddresses(
        kafka=kafka,
        redis=redis_url,
        grpc=grpc_address,
        registry=str(registry),
        project=options.project,
        pid=os.getpid(),
        state_dir=str(stack.state_dir),
        processes={name: s.process.pid for name, s in stack.services.items()},
        metrics=metrics,
    )


def worker_names(workers: int) -> list[str]:
    return ["worker" if n == 0 else f"worker-{n}" for n in range(workers)]


def apply_feature_repo(project: str, redis_url: str, state_dir: Path) -> None:
    """`feast apply` for this stack, so Feast clients (`feast` CLI, SDK) can read the online features."""
    from streamrec.features.feast_apply import apply

    log.info("applying the Feast repository (registry in %s)", state_dir)
    apply(project, redis_url, state_dir)


def create_topics(bootstrap: str, partitions: int, replication: int = 1) -> None:
    """The events topic and the dead-letter topic, with `replication` replicas each (3 on a 3-node cluster,
    where the brokers' `min.insync.replicas` of 2 then lets one node fail without losing an acknowledged write)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamrec.config import DLQ_MAX_MESSAGE_BYTES, DLQ_TOPIC

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # the dead-letter topic takes records bigger than the events topic does: each letter is a record + headers
    dlq = NewTopic(DLQ_TOPIC, 1, replication, config={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
    futures = admin.create_topics([NewTopic(EVENTS_TOPIC, partitions, replication), dlq])
    for topic, future in futures.items():
        try:
            future.result(timeout=10)
        except Exception as exc:  # an existing topic is fine; anything else is reported
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            log.debug("topic %s exists", topic)


def scorer_ready(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def wait_worker_ready(stack: LocalStack, kafka: str, redis_url: str, project: str, timeout_s: float = 90.0) -> None:
    """Send a probe event and wait until the worker has refreshed its session: the whole path works."""
    from streamrec.devstack.probe import probe_session

    def all_alive() -> bool:
        return all(service.alive() for service in stack.services.values())

    try:
        probe_session(
            kafka,
            redis_url,
            project,
            f"__probe__-{uuid.uuid4().hex[:8]}",
            timeout_s=timeout_s,
            still_worth_waiting=all_alive,
        )
    except StackError:
        dead = [s for s in stack.services.values() if not s.alive()]
        if dead:
            raise StackError(f"{dead[0].name} exited while starting:\n{dead[0].log_tail()}") from None
        raise
