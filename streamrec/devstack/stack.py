"""The whole local streamrec as one unit: broker, Redis, a model, the scorer and the worker, ready to use."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from streamrec.artifact import current_version, list_versions, load_manifest
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.devstack.redis_cluster import start_redis_cluster
from streamrec.errors import StackError

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"
REDIS_DIR = "redis"  # STATE_DIR/redis: the append-only file of a stack that keeps its data (`up`)
REDIS_CLUSTER_DIR = "redis-cluster"  # STATE_DIR/redis-cluster: its nodes' data and layout, for `up --redis-cluster`
SCORER_START_TIMEOUT_S = 60.0
TrainOn = Literal["auto", "synthetic"]
# What `train_on="auto"` trains an empty registry on when the real data are there: the load test's model
# (scenarios/yoochoose-1000eps.yaml), so a replay of the last day (`streamrec replay --data yoochoose-100k-test`)
# is scored by a model that knows its items.
REAL_DATASET = "yoochoose-100k"
REAL_MODEL = "gru4rec"
REAL_EPOCHS = 3


@dataclass
class Member:
    """One process of a group the stack runs several of (workers, scorers): how status and `down` find it."""

    name: str  # "worker", "worker-1", ... / "scorer", "scorer-1", ...
    pid: int
    metrics: str  # host:port of its Prometheus /metrics
    address: str = ""  # a scorer's gRPC host:port
    restarts: int = 0  # times `streamrec up` restarted it after it died


@dataclass
class StackAddresses:
    kafka: str
    redis: str
    grpc: str  # the scorers' host:port, comma-separated (every client here takes the list: streamrec.channels)
    registry: str
    project: str
    pid: int
    state_dir: str
    processes: dict[str, int]  # every service's name -> pid
    metrics: dict[str, str] = field(default_factory=dict)  # service name -> host:port of its Prometheus /metrics
    web: str = ""  # URL of the live page and storefront, when `streamrec up` serves them
    workers: list[Member] = field(default_factory=list)
    scorers: list[Member] = field(default_factory=list)
    redis_cluster_nodes: list[str] = field(default_factory=list)  # host:port of each shard, for a Redis Cluster

    def write(self, state_dir: Path) -> Path:
        path = state_dir / STACK_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, state_dir: Path) -> StackAddresses:
        data = json.loads((state_dir / STACK_FILE).read_text())
        for group in ("workers", "scorers"):
            data[group] = [Member(**m) for m in data.get(group, [])]
        return cls(**data)

    def members(self) -> list[Member]:
        return [*self.workers, *self.scorers]

    def restarted(self, name: str, pid: int) -> None:
        """Record that `up` started `name` again as `pid`."""
        self.processes[name] = pid
        for member in self.members():
            if member.name == name:
                member.pid, member.restarts = pid, member.restarts + 1

    def summary(self) -> dict[str, str]:
        """The addresses `up` prints on one line."""
        return {"kafka": self.kafka, "redis": self.redis, "grpc": self.grpc, "web": self.web}


@dataclass(frozen=True)
class StackOptions:
    project: str = "streamrec"
    partitions: int = 4
    session_timeout_s: float = 6.0  # Kafka's group.min.session.timeout.ms
    registry: Path | None = None  # default: STATE_DIR/registry, trained when empty (see `train_on`)
    # what an empty registry is trained on: "auto" = REAL_DATASET when its files are in `data_dir`, else synthetic
    # sessions; "synthetic" = always synthetic (the demo's and the tests' choice)
    train_on: TrainOn = "synthetic"
    data_dir: Path | None = None  # where "auto" looks; default ../shared/data relative to the current directory
    train_sessions: int = 4000  # synthetic training only
    train_epochs: int | None = None  # default: the trainer's for synthetic sessions, REAL_EPOCHS for real data
    workers: int = 1
    scorers: int = 1  # behind one comma-separated address list, balanced round robin by every client
    keep_data: bool = False  # Redis keeps its keys in an append-only file in STATE_DIR/redis (`up`: resumable)
    fresh: bool = False  # remove the broker's and Redis's data in the state dir first (`up --fresh`)
    redis_cluster: int = 0  # primaries of a Redis Cluster (each with a replica) instead of one Redis; 0: one Redis
    processing_guarantee: str = "at_least_once"  # the worker's (StreamSettings.processing_guarantee)
    feast_apply: bool = False  # `up` and `demo` register the Feast repository; most tests need not pay ~10 s


@dataclass(frozen=True)
class TrainingChoice:
    """What an empty registry gets trained on: `dataset` (a name in training.datasets) or, when None, synthetic
    sessions; `message` says which and why, for the log and the console."""

    dataset: str | None
    data_dir: Path | None
    message: str


def choose_training(train_on: TrainOn, data_dir: Path) -> TrainingChoice:
    """REAL_DATASET when `train_on` is "auto" and its files are all in `data_dir`, else synthetic sessions."""
    from streamrec.training.datasets import DATASETS

    if train_on == "synthetic":
        return TrainingChoice(None, None, "training on synthetic sessions (train_on='synthetic')")
    train_file, *held_out = DATASETS[REAL_DATASET].files
    missing = [data_dir / name for name in (train_file, *held_out) if not (data_dir / name).is_file()]
    if missing:
        return TrainingChoice(
            None,
            None,
            f"{missing[0]} not found: training on synthetic sessions instead of {REAL_DATASET}, so a replay of "
            f"the real clickstream will be answered from popularity (fallback); put the data in {data_dir} and "
            "start with an empty registry to train on it",
        )
    return TrainingChoice(
        REAL_DATASET,
        data_dir,
        f"training {REAL_MODEL} on the training split of {REAL_DATASET}: {data_dir / train_file} (sessions of its "
        f"last day, {', '.join(held_out)}, are held out for testing; `streamrec replay --data yoochoose-100k-test` "
        "replays them)",
    )


def ensure_model(registry: Path, options: StackOptions) -> str:
    """Train a model into `registry` unless it already holds a version; returns what the stack will serve."""
    if list_versions(registry):
        return f"reusing {describe_model(registry)} from {registry} (remove that folder to train again)"
    from streamrec.training.datasets import DEFAULT_DATA_DIR

    choice = choose_training(options.train_on, options.data_dir or (Path.cwd() / DEFAULT_DATA_DIR).resolve())
    log.info("no model in %s: %s", registry, choice.message)
    if choice.dataset is not None:
        from streamrec.training.datasets import load_dataset
        from streamrec.training.pipeline import train_on_dataset

        dataset = load_dataset(choice.dataset, choice.data_dir)
        epochs = options.train_epochs or REAL_EPOCHS
        train_on_dataset(dataset, REAL_MODEL, registry, epochs=epochs, progress=False, log=log.info)
    else:
        from streamrec.training.synthetic import SyntheticConfig, generate
        from streamrec.training.train import train_session_model

        events = generate(SyntheticConfig(n_sessions=options.train_sessions))
        if options.train_epochs:
            train_session_model(events, registry, epochs=options.train_epochs, source="synthetic")
        else:
            train_session_model(events, registry, source="synthetic")
    return f"published {describe_model(registry)} to {registry}"


def describe_model(registry: Path) -> str:
    """The current version of `registry` and the data it was trained on, as its manifest records them."""
    version = current_version(registry)
    manifest = load_manifest(registry / version)
    data = manifest.data
    source = str(data.get("source", "unrecorded data"))
    files = ", ".join(data.get("files", []))
    if "protocol" in data:  # training.pipeline: the protocol's test days were held out
        held_out = float(data["protocol"].get("test_days", 0))
        source = f"the training split of {source} ({files}; its last {held_out:g} day(s) held out)"
    elif files:
        source = f"{source} ({files})"
    return f"model {version} ({manifest.model_type}) trained on {source}"


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
    if options.fresh:
        remove_data(stack.state_dir)
    kafka = stack.start_broker()
    redis_url, redis_nodes = start_online_store(stack, options)
    create_topics(kafka, options.partitions)
    log.info("%s", ensure_model(registry, options))
    if options.feast_apply:
        apply_feature_repo(options.project, redis_url, stack.state_dir / "feast")
    scorers = [
        Member(name, 0, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        for name in member_names("scorer", options.scorers)
    ]
    workers = [Member(name, 0, f"127.0.0.1:{free_port()}") for name in member_names("worker", options.workers)]
    grpc_address = ",".join(s.address for s in scorers)
    env = service_env(kafka, redis_url, grpc_address, registry, options)
    for scorer in scorers:  # all first, then wait: each loads its model meanwhile
        scorer_env = {**env, "STREAMREC_SERVING_METRICS_PORT": port_of(scorer.metrics)}
        start_scorer(stack, scorer_env, scorer.address, scorer.name, wait=False)
    for scorer in scorers:
        stack.wait_ready(scorer.name, functools.partial(scorer_ready, scorer.address), SCORER_START_TIMEOUT_S)
    for worker in workers:
        worker_env = {
            **env,
            "STREAMREC_STREAM_DATA_DIR": str(stack.state_dir / worker.name),
            "STREAMREC_STREAM_METRICS_PORT": port_of(worker.metrics),
        }
        stack.python_module(worker.name, ["worker"], kafka, lambda: True, env=worker_env)
    wait_worker_ready(stack, kafka, redis_url, options.project)
    for member in (*scorers, *workers):
        member.pid = stack.services[member.name].process.pid
    return StackAddresses(
        kafka=kafka,
        redis=redis_url,
        grpc=grpc_address,
        registry=str(registry),
        project=options.project,
        pid=os.getpid(),
        state_dir=str(stack.state_dir),
        processes={name: s.process.pid for name, s in stack.services.items()},
        metrics={m.name: m.metrics for m in (*scorers, *workers)},
        workers=workers,
        scorers=scorers,
        redis_cluster_nodes=redis_nodes,
    )


def start_online_store(stack: LocalStack, options: StackOptions) -> tuple[str, list[str]]:
    """One redis-server, or a Redis Cluster of `options.redis_cluster` primaries with a replica each: its URL,
    and every node's host:port (none for one Redis). With `keep_data` the data live in the state dir."""
    if options.redis_cluster:
        kept = stack.state_dir / REDIS_CLUSTER_DIR if options.keep_data else None
        cluster = start_redis_cluster(stack, options.redis_cluster, 1, appendonly=options.keep_data, data_dir=kept)
        return cluster.url, cluster.nodes
    if options.keep_data:
        return stack.start_redis(appendonly=True, data_dir=stack.state_dir / REDIS_DIR), []
    return stack.start_redis(), []


def member_names(kind: str, count: int) -> list[str]:
    """ "worker", "worker-1", ...: the first keeps the plain name that single-process stacks always had."""
    return [kind if n == 0 else f"{kind}-{n}" for n in range(count)]


def worker_names(workers: int) -> list[str]:
    return member_names("worker", workers)


def port_of(address: str) -> str:
    return address.rsplit(":", 1)[1]


def remove_data(state_dir: Path) -> None:
    """The broker's storage (topics, offsets, KRaft metadata), Redis's append-only file and the workers' local
    data under `state_dir`; the model registry, the Feast registry and the logs stay."""
    redis_data = [state_dir / REDIS_DIR, state_dir / REDIS_CLUSTER_DIR]
    doomed = [*state_dir.glob("kafka-*"), *redis_data, *state_dir.glob("worker*")]
    for path in doomed:
        if path.is_dir():
            log.info("removing %s", path)
            shutil.rmtree(path)


def apply_feature_repo(project: str, redis_url: str, state_dir: Path) -> None:
    """`feast apply` for this stack, so Feast clients (`feast` CLI, SDK) can read the online features."""
    from streamrec.features.feast_apply import apply

    log.info("applying the Feast repository (registry in %s)", state_dir)
    apply(project, redis_url, state_dir)


def create_topics(bootstrap: str, partitions: int, replication: int = 1) -> None:
    """The events topic, the catalogue topic (compacted: the latest record of each product is the catalogue) and
    their dead-letter topics, with `replication` replicas each (3 on a 3-node cluster, where the brokers'
    `min.insync.replicas` of 2 then lets one node fail without losing an acknowledged write)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamrec.config import DLQ_MAX_MESSAGE_BYTES, DLQ_TOPIC

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # the dead-letter topic takes records bigger than the events topic does: each letter is a record + headers
    dlq = NewTopic(DLQ_TOPIC, 1, replication, config={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
    from streamrec.stream.config import CATALOG_DLQ_TOPIC, CATALOG_TOPIC

    catalog = NewTopic(CATALOG_TOPIC, 1, replication, config={"cleanup.policy": "compact"})
    catalog_dlq = NewTopic(CATALOG_DLQ_TOPIC, 1, replication, config={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
    futures = admin.create_topics([NewTopic(EVENTS_TOPIC, partitions, replication), dlq, catalog, catalog_dlq])
    for topic, future in futures.items():
        try:
            future.result(timeout=10)
        except Exception as exc:  # an existing topic is fine; anything else is reported
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            log.debug("topic %s exists", topic)


def start_scorer(
    stack: LocalStack, env: dict[str, str], address: str, name: str = "scorer", wait: bool = True
) -> Service:
    """A scorer process (`streamrec serve`) listening on `address`, once it reports SERVING (unless not `wait`:
    then `stack.wait_ready(name, ...)` is the caller's)."""
    ready = functools.partial(scorer_ready, address) if wait else None
    return stack.python_module(name, ["serve", "--port", port_of(address)], address, ready, env=env)


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
