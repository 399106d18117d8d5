"""Shared tools of the fault tests: services on free ports, fresh events, RSS sampling, metrics and settling.

The fault tests start their own services (not the `services` fixture) because each needs a variation: Redis with
an append-only file, a scorer with a metrics port that can be killed and started again on the same port, or no
scorer at all.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.devstack.redis_cluster import start_redis_cluster
from streamrec.devstack.stack import StackOptions, create_topics, service_env, start_scorer
from streamrec.events import CanonicalEvent
from streamrec.stream.producer import ReplayResult, replay
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered
from tests.integration.harness import Services, applied_total

DAY_MS = 86_400_000


def recent_events(n_sessions: int, session_seed: int, mean_session_length: float = 6.0) -> list[CanonicalEvent]:
    """Synthetic events in time order, dated within the last two days.

    The generator's default start date is fixed; the worker dead-letters events older than 400 days, so a test
    that replays it would start failing by itself one day. Events dated "now" keep these tests valid.
    """
    start = int(time.time() * 1000) - 2 * DAY_MS
    config = SyntheticConfig(
        n_sessions=n_sessions, session_seed=session_seed, start_ms=start, mean_session_length=mean_session_length
    )
    return generate_time_ordered(config)


def start_services(
    stack: LocalStack,
    registry: Path,
    *,
    redis_appendonly: bool = False,
    scorer: bool = True,
    scorer_metrics_port: int = 0,
    scorer_address: str = "",
    brokers: int = 1,
    redis_cluster: bool = False,
) -> Services:
    """Kafka (`brokers` nodes; with 3, every topic has 3 replicas, the worker's changelogs too), Redis and
    (unless `scorer` is False) a scorer process; workers are started by the test."""
    project = f"t{uuid.uuid4().hex[:8]}"
    kafka = stack.start_broker(brokers)
    if redis_cluster:  # 3 primaries, each with a replica
        redis_url = start_redis_cluster(stack, appendonly=redis_appendonly).url
    else:
        redis_url = stack.start_redis(appendonly=redis_appendonly)
    create_topics(kafka, 4, replication=brokers)
    address = scorer_address or f"127.0.0.1:{free_port()}"
    env = service_env(kafka, redis_url, address, registry, StackOptions(project=project))
    env["STREAMREC_STREAM_REPLICATION_FACTOR"] = str(brokers)
    if scorer_metrics_port:
        env["STREAMREC_SERVING_METRICS_PORT"] = str(scorer_metrics_port)
    if scorer:
        start_scorer(stack, env, address)
    return Services(stack, kafka, redis_url, env, project)


def partition_leaders(stack: LocalStack, kafka: str, topic: str = EVENTS_TOPIC) -> dict[int, Service]:
    """The broker process that leads each partition of `topic`, by partition."""
    from confluent_kafka.admin import AdminClient

    nodes = {node_id(service): service for service in stack.kafka_nodes()}
    metadata = AdminClient({"bootstrap.servers": kafka}).list_topics(topic, timeout=10)
    return {p.id: nodes[p.leader] for p in metadata.topics[topic].partitions.values()}


def node_id(broker: Service) -> int:
    """The KRaft node id of a broker service: `broker` alone is node 1, `broker-N` of a cluster is node N."""
    return int(broker.name.rsplit("-", 1)[1]) if "-" in broker.name else 1


def in_sync_replicas(kafka: str, topic: str = EVENTS_TOPIC) -> dict[int, list[int]]:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": kafka}).list_topics(topic, timeout=10)
    return {p.id: sorted(p.isrs) for p in metadata.topics[topic].partitions.values()}


class ReplayThread:
    """`streamrec.stream.producer.replay` in a background thread, so the test can inject its fault meanwhile.

    `handed` counts events given to the producer so far (queued, not necessarily delivered); `finished_at` is
    when the replay returned, i.e. every event was delivered or failed.
    """

    def __init__(self, events: list[CanonicalEvent], kafka: str, rate: float | None = None) -> None:
        self.result = ReplayResult()
        self.handed = 0
        self.finished_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(events, kafka, rate), name="replay", daemon=True)

    def _counted(self, events: list[CanonicalEvent]) -> Iterator[CanonicalEvent]:
        for event in events:
            yield event
            self.handed += 1

    def _run(self, events: list[CanonicalEvent], kafka: str, rate: float | None) -> None:
        self.result = replay(self._counted(events), kafka, EVENTS_TOPIC, rate=rate)
        self.finished_at = time.monotonic()

    def start(self) -> ReplayThread:
        self._thread.start()
        return self

    def wait_handed(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.handed < count:
            assert time.monotonic() < deadline, f"only {self.handed} of {count} events handed to the producer"
            time.sleep(0.02)

    def join(self, timeout_s: float = 300) -> ReplayResult:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the replay did not finish"
        return self.result


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB, from /proc (VmRSS is in kB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


@dataclass
class RssSampler:
    """Samples the RSS of some processes every `interval_s` in a background thread: (seconds, MiB) per name."""

    pids: dict[str, int]
    interval_s: float = 0.5
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                try:
                    value = rss_mb(pid)
                except OSError:  # the process is gone (killed by the test): nothing to sample
                    continue
                self.samples.setdefault(name, []).append((time.monotonic() - started, value))
            self._stop.wait(self.interval_s)

    def stop(self) -> dict[str, list[tuple[float, float]]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.samples


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """One sample of a Prometheus text exposition; 0 when absent (a counter never incremented is not shown)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_until_settled(
    services: Services, items: list[str], expected: int, timeout_s: float, watch: tuple[Service, ...] = ()
) -> int:
    """Poll the applied total until it reaches `expected` and stays put for 2 s; fail early if a watched dies."""
    client = services.client()
    deadline, last, stable_since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        for service in watch:
            assert service.alive(), f"{service.name} died:\n{service.log_tail(40)}"
        total = applied_total(client, services.project, items)
        if total != last:
            last, stable_since = total, time.monotonic()
        elif total >= expected and time.monotonic() - stable_since > 2:
            return total
        time.sleep(0.25)
    return last


def wait_applied(
    services: Services, items: list[str], at_least: int, timeout_s: float, watch: tuple[Service, ...] = ()
) -> int:
    """Wait until at least `at_least` events are applied (for starting a fault mid-stream)."""
    client = services.client()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in watch:
            assert service.alive(), f"{service.name} died:\n{service.log_tail(40)}"
        total = applied_total(client, services.project, items)
        if total >= at_least:
            return total
        time.sleep(0.1)
    raise AssertionError(f"only {applied_total(client, services.project, items)} of {at_least} applied in time")
