"""Apache Kafka nodes in KRaft mode for the dev stack: their configuration, storage format and command line.

Every node is broker and controller at once (no ZooKeeper, no separate controllers) and listens on loopback
only. One node makes the default stack; three make the cluster of the fault tests (replication factor 3,
`min.insync.replicas` 2). The quorum is static (`controller.quorum.voters`), so one code path serves both.
Storage an earlier run formatted is resumed with its cluster id on the new run's ports (`stored_cluster_id`).
Processes are started by `streamrec.devstack.localstack.LocalStack`, which owns every child's lifetime.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamrec.devstack.kafka_dist import KafkaDist, java_binary
from streamrec.errors import StackError

# A small machine: a fixed, modest heap and the serial collector (no GC threads competing for two cores).
JVM_FLAGS = ("-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
# The storage tool runs for a second: the first JIT tier is all it needs.
TOOL_JVM_FLAGS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
INTERNAL_TOPIC_PARTITIONS = 8  # group offsets and transaction state; Kafka's default of 50 slows the first join
FORMAT_TIMEOUT_S = 60.0
ARCHIVE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class KraftNode:
    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"


def new_cluster_id() -> str:
    """A cluster id as Kafka's storage tool makes them: 16 random bytes, URL-safe base64 without padding, never
    starting with "-" (Kafka's `Uuid.randomUuid` rule: such an id would read as an option on a command line)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def node_properties(node: KraftNode, voters: Sequence[KraftNode]) -> dict[str, str]:
    """server.properties of one combined broker+controller node of a cluster of `len(voters)` nodes."""
    replicas = len(voters)
    min_isr = str(min(2, replicas))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(f"{v.node_id}@127.0.0.1:{v.controller_port}" for v in voters),
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": str(INTERNAL_TOPIC_PARTITIONS),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": str(INTERNAL_TOPIC_PARTITIONS),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        # a killed node is noticed in seconds, not Kafka's default 9 s, so the fault tests see a failover
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "4000",
    }


def plan_nodes(root: Path, count: int, ports: Sequence[int]) -> list[KraftNode]:
    """`count` nodes under `root`, taking a broker and a controller port each from `ports` (2 * count of them)."""
    if len(ports) != 2 * count:
        raise StackError(f"{count} Kafka nodes need {2 * count} ports, got {len(ports)}")
    return [KraftNode(i + 1, ports[2 * i], ports[2 * i + 1], root / f"kafka-{i + 1}") for i in range(count)]


def write_config(node: KraftNode, voters: Sequence[KraftNode]) -> None:
    """The node's server.properties for this run's ports (a resumed node gets new ones: see `stored_cluster_id`)."""
    node.directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in node_properties(node, voters).items()]
    node.config_path.write_text("\n".join(lines) + "\n")


def stored_cluster_id(nodes: Sequence[KraftNode]) -> str | None:
    """The cluster id the nodes' storage was formatted with, or None when none of it is formatted yet.

    Resuming such storage on other ports works because the quorum is static: the voters' endpoints come from
    `controller.quorum.voters` in each run's configuration (kraft.version 0), not from the metadata log, and a
    broker registers its new listeners when it starts. Storage formatted for part of the nodes only, or for
    several clusters, cannot be resumed: a StackError says so.
    """
    ids = {node.node_id: _meta_properties(node).get("cluster.id") for node in nodes}
    found = set(ids.values())
    if found == {None}:
        return None
    if len(found) == 1:
        return found.pop()
    raise StackError(
        f"the Kafka storage under {nodes[0].directory.parent} is not one cluster's (cluster ids by node: {ids}); "
        "start afresh (streamrec up --fresh) or remove those kafka-* folders"
    )


def _meta_properties(node: KraftNode) -> dict[str, str]:
    path = node.data_dir / "meta.properties"
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def prepare_node(dist: KafkaDist, node: KraftNode, voters: Sequence[KraftNode], cluster_id: str) -> None:
    """Write the node's configuration and format its storage (a no-op for storage formatted before)."""
    write_config(node, voters)
    argv = [
        java_binary(),
        *TOOL_JVM_FLAGS,
        *_class_sharing(dist),
        "-cp",
        dist.classpath(),
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        f"--cluster-id={cluster_id}",
        "-c",
        str(node.config_path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise StackError(f"formatting Kafka storage for node {node.node_id} failed:\n{done.stdout}{done.stderr}")


def broker_argv(dist: KafkaDist, node: KraftNode, extra_jvm_flags: Sequence[str] = ()) -> list[str]:
    return [
        java_binary(),
        *JVM_FLAGS,
        *_class_sharing(dist),
        *extra_jvm_flags,
        f"-Dlog4j2.configurationFile={dist.log_config}",
        "-cp",
        dist.classpath(),
        "kafka.Kafka",
        str(node.config_path),
    ]


def _class_sharing(dist: KafkaDist) -> list[str]:
    if dist.class_archive.is_file():
        return ["-Xshare:auto", f"-XX:SharedArchiveFile={dist.class_archive}"]
    return []


def kafka_answers(address: str) -> bool:
    """True once the broker at `address` answers a metadata request listing at least one broker."""
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": address, "log_level": 0}).list_topics(timeout=2)
    except Exception:  # any metadata failure means "not yet"
        return False
    return bool(metadata.brokers)


def make_class_archive(dist: KafkaDist) -> None:
    """Record the classes one broker run loads into `dist.class_archive` (set-up; skipped when it exists)."""
    if dist.class_archive.is_file():
        return
    from streamrec.devstack.localstack import free_port, port_open

    with tempfile.TemporaryDirectory(prefix="kafka-archive-") as tmp:
        node = KraftNode(1, free_port(), free_port(), Path(tmp))
        prepare_node(dist, node, [node], new_cluster_id())
        staging = dist.home / f"kafka.jsa.{uuid.uuid4().hex[:8]}"
        argv = broker_argv(dist, node, [f"-XX:ArchiveClassesAtExit={staging}"])
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + ARCHIVE_TIMEOUT_S
            while not (port_open("127.0.0.1", node.port) and kafka_answers(node.address)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise StackError("the broker run that records the class archive did not start")
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(ARCHIVE_TIMEOUT_S)
    if staging.is_file():
        staging.rename(dist.class_archive)
