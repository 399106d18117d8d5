"""`streamrec bench scale`: what one more worker, scorer process or Redis primary buys, measured step by step.

One broker for the run; each step starts its own Redis Cluster (no replicas: the figure is capacity, not
safety), scorer and workers with a fresh project and a fresh events topic, waits until every partition has its
worker, then publishes the same synthetic events at full speed and measures:

- events/s from the first event applied to the last (worker metrics `streamrec_worker_events_total`);
- Redis commands and worker round trips per event (INFO `total_commands_processed` of every primary, and
  `streamrec_worker_redis_round_trips_total`: one pipeline to one node is one round trip);
- Recommend/s at p99 <= 10 ms: closed loops of 2, 4, 8, 16 callers (`levels`) over `channels` connections for
  `load_s` seconds each (SO_REUSEPORT spreads connections, not calls, over a scorer's processes), the highest
  throughput of a level within the bound, and every level's figures;
- cores used by each component over each window (workers, scorer with its processes, Redis, broker, this
  client), from /proc.

Steps: 1 worker, 1 scorer process, 1 primary; then 2 workers; then 2 scorer processes; then 3 primaries. The
ratios are against the first step of the same run. On a machine with fewer cores than the step's processes the
figures say what saturated (see `cores`), not what the design would do on more.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import redis

from streamrec.bench.common import bench_registry
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.kafka_dist import broker_label
from streamrec.devstack.localstack import LocalStack, Service, free_port
from streamrec.devstack.redis_cluster import RedisClusterInfo, start_redis_cluster
from streamrec.devstack.stack import StackOptions, create_topics, service_env, start_scorer
from streamrec.loadtest.cpu import CpuMeter
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.stream.producer import replay
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered

PARTITIONS = 4
EVENTS_METRIC = "streamrec_worker_events_total"
TRIPS_METRIC = "streamrec_worker_redis_round_trips_total"
CALL_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Step:
    workers: int
    scorer_processes: int
    primaries: int

    @property
    def label(self) -> str:
        return f"{self.workers} worker(s), {self.scorer_processes} scorer process(es), {self.primaries} primary(ies)"


STEPS = (Step(1, 1, 1), Step(2, 1, 1), Step(2, 2, 1), Step(2, 2, 3))
LEVELS = (2, 4, 8, 16)
P99_LIMIT_MS = 10.0


def run_scale(
    events: int = 30_000,
    load_s: float = 3.0,
    levels: tuple[int, ...] = LEVELS,
    channels: int = 4,
    steps: tuple[Step, ...] = STEPS,
) -> dict[str, Any]:
    registry = bench_registry()
    data = generate_time_ordered(SyntheticConfig(n_sessions=events // 6 + 1, session_seed=23))[:events]
    sessions = sorted({e.session_id for e in data})[:2000]
    results = []
    with LocalStack() as stack:
        kafka = stack.start_broker()
        for n, step in enumerate(steps):
            with LocalStack(state_dir=stack.state_dir / f"step-{n}") as step_stack:
                broker = stack.services["broker"].process.pid
                load = Load(sessions, load_s, levels, channels)
                results.append(run_step(step_stack, kafka, broker, registry, step, data, load))
    first = results[0]
    for result in results:
        result["events_ratio"] = round(result["events_per_s"] / first["events_per_s"], 3)
        result["recommend_ratio"] = round(result["recommend_per_s"] / first["recommend_per_s"], 3)
    return {
        "figure": "scale-out steps: events/s, Recommend/s, Redis cost per event, cores per component",
        "broker": broker_label(),
        "events": len(data),
        "partitions": PARTITIONS,
        "steps": results,
        "data": "synthetic (training.synthetic, session_seed=23)",
    }


@dataclass(frozen=True)
class Load:
    """The closed loops of Recommend calls each step is measured with: one per concurrency level."""

    sessions: list[str]
    seconds: float
    levels: tuple[int, ...]
    channels: int


def run_step(
    stack: LocalStack, kafka: str, broker_pid: int, registry: Path, step: Step, data: list[Any], load: Load
) -> dict[str, Any]:
    recreate_topic(kafka)
    cluster = start_redis_cluster(stack, primaries=step.primaries, replicas_per_primary=0)
    project = f"scale{uuid.uuid4().hex[:6]}"
    address = f"127.0.0.1:{free_port()}"
    env = service_env(kafka, cluster.url, address, registry, StackOptions(project=project, partitions=PARTITIONS))
    scorer = start_scorer(stack, {**env, "STREAMREC_SERVING_PROCESSES": str(step.scorer_processes)}, address)
    workers, metrics_ports = start_workers(stack, env, step.workers)
    wait_all_partitions_owned(cluster, project, timeout_s=120)
    pids = {**component_pids(stack, scorer, workers, cluster), "broker": broker_pid}

    commands_before, events_before, trips_before = redis_commands(cluster), events(metrics_ports), trips(metrics_ports)
    meter = CpuMeter(pids)
    sent = replay(data, kafka, EVENTS_TOPIC)
    if sent.failed:
        raise RuntimeError(f"{sent.failed} events not delivered: {sent.errors[:3]}")
    rate, ingest_cpu = wait_applied(metrics_ports, events_before + len(data), meter)
    applied = events(metrics_ports) - events_before
    commands = redis_commands(cluster) - commands_before
    round_trips = trips(metrics_ports) - trips_before

    meter = CpuMeter(pids).start()
    answered = [asyncio.run(closed_loop(address, load, concurrency)) for concurrency in load.levels]
    load_cpu = meter.stop()
    within = [level for level in answered if level["p99_ms"] <= P99_LIMIT_MS] or [{"rps": 0.0, "p99_ms": math.nan}]
    best = max(within, key=lambda level: level["rps"])
    return {
        "step": step.label,
        **asdict(step),
        "events_per_s": round(rate, 1),
        "redis_commands_per_event": round(commands / applied, 3),
        "redis_round_trips_per_event": round(round_trips / applied, 4),
        "recommend_per_s": round(best["rps"], 1),
        "recommend_p99_ms": round(best["p99_ms"], 2),
        "recommend_levels": [
            [level["concurrency"], round(level["rps"], 1), round(level["p99_ms"], 2)] for level in answered
        ],
        "recommend_errors": sum(level["errors"] for level in answered),
        "cores_ingest": ingest_cpu.get("cores", {}),
        "cores_recommend": load_cpu.get("cores", {}),
        "machine_busy_cores_ingest": ingest_cpu.get("machine_busy_cores"),
    }


def recreate_topic(kafka: str) -> None:
    """The events topic empty again, so a step's fresh consumer group reads only that step's events."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka})
    if EVENTS_TOPIC in admin.list_topics(timeout=10).topics:
        for future in admin.delete_topics([EVENTS_TOPIC]).values():
            future.result(30)
        deadline = time.monotonic() + 30
        while EVENTS_TOPIC in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
            time.sleep(0.2)
    for _ in range(50):  # a just-deleted topic may still be "marked for deletion" for a moment
        try:
            create_topics(kafka, PARTITIONS)
            return
        except Exception:  # the admin client's error says only "try again"
            time.sleep(0.2)
    create_topics(kafka, PARTITIONS)


def start_workers(stack: LocalStack, env: dict[str, str], count: int) -> tuple[list[Service], list[int]]:
    workers, ports = [], []
    for n in range(count):
        port = free_port()
        worker_env = {
            **env,
            "STREAMREC_STREAM_DATA_DIR": str(stack.state_dir / f"worker-{n}"),
            "STREAMREC_STREAM_METRICS_PORT": str(port),
        }
        kafka = env["STREAMREC_KAFKA_BOOTSTRAP"]
        workers.append(stack.python_module(f"worker-{n}", ["worker"], kafka, lambda: True, env=worker_env))
        ports.append(port)
    return workers, ports


def wait_all_partitions_owned(cluster: RedisClusterInfo, project: str, timeout_s: float) -> None:
    """Until the workers' heartbeats (`{project}:workers:*`) cover every partition: the group is balanced."""
    from streamrec.redis import sync_client

    client = sync_client(cluster.url, 5)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            owned: set[int] = set()
            for key in client.scan_iter(match=f"{project}:workers:*"):
                raw = cast("bytes | None", client.get(key))
                if raw:
                    owned.update(json.loads(raw)["partitions"])
            if owned >= set(range(PARTITIONS)):
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise TimeoutError(f"the workers did not own all {PARTITIONS} partitions within {timeout_s:.0f}s")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def metric_sum(text: str, name: str, label_filter: str = "") -> float:
    pattern = re.escape(name) + r"(\{[^}]*\})? ([0-9.e+-]+)$"
    return sum(
        float(m.group(2)) for m in re.finditer(pattern, text, re.MULTILINE) if label_filter in (m.group(1) or "")
    )


def events(ports: list[int]) -> float:
    return sum(metric_sum(scrape(port), EVENTS_METRIC, 'outcome="processed"') for port in ports)


def trips(ports: list[int]) -> float:
    return sum(metric_sum(scrape(port), TRIPS_METRIC) for port in ports)


def redis_commands(cluster: RedisClusterInfo) -> int:
    total = 0
    for primary in cluster.primaries:
        client = redis.Redis.from_url(f"redis://{primary}")
        total += int(cast(dict[str, Any], client.info("stats"))["total_commands_processed"])
        client.close()
    return total


def wait_applied(
    ports: list[int], target: float, meter: CpuMeter, timeout_s: float = 600
) -> tuple[float, dict[str, Any]]:
    """Rate from the first event processed to `target`, and the cores used over that window."""
    start_count, started = events(ports), 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = events(ports)
        now = time.perf_counter()
        if not started and done > start_count:
            started, start_count = now, done
            meter.start()
        if done >= target:
            return (done - start_count) / max(now - started, 1e-6), meter.stop()
        time.sleep(0.02)
    raise TimeoutError(f"the workers processed {events(ports)} of {target:.0f} events within {timeout_s:.0f}s")


def component_pids(
    stack: LocalStack, scorer: Service, workers: list[Service], cluster: RedisClusterInfo
) -> dict[str, int]:
    pids = {worker.name: worker.process.pid for worker in workers}
    pids["scorer"] = scorer.process.pid
    for n, child in enumerate(descendants(scorer.process.pid)):
        pids[f"scorer-process-{n}"] = child
    for address, name in cluster.services.items():
        pids[f"redis-{address.rsplit(':', 1)[1]}"] = stack.services[name].process.pid
    pids["bench-client"] = os.getpid()
    return pids


def descendants(pid: int) -> list[int]:
    """Child processes of `pid` (a scorer's process group), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


async def closed_loop(address: str, load: Load, concurrency: int) -> dict[str, Any]:
    """`concurrency` callers spread over `channels` connections, each sending its next Recommend when answered."""
    sessions, seconds, channels = load.sessions, load.seconds, load.channels
    options = [("grpc.use_local_subchannel_pool", 1)]  # a connection per channel: reuseport balances connections
    opened = [grpc.aio.insecure_channel(address, options=options) for _ in range(channels)]
    stubs = [recommender_pb2_grpc.RecommenderStub(channel) for channel in opened]
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    record_from = loop.time() + 1.0
    stop_at = record_from + seconds

    async def caller(n: int) -> None:
        nonlocal errors
        stub = stubs[n % channels]
        i = n
        while (now := loop.time()) < stop_at:
            request = pb.RecommendRequest(session_id=sessions[i % len(sessions)], k=10)
            i += concurrency
            started = time.perf_counter()
            try:
                await stub.Recommend(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError:
                errors += now >= record_from
                continue
            if now >= record_from:
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    elapsed = loop.time() - record_from
    for channel in opened:
        await channel.close()
    return {
        "concurrency": concurrency,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies else float("nan"),
        "errors": errors,
    }
