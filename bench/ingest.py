"""`streamrec bench ingest`: sustained events/s of one worker beside a do-nothing Faust agent on the same topic.

One run: start a broker and Redis, publish N synthetic events, then consume the same topic three ways, one
after the other so they never share the CPU: a plain aiokafka loop (context), a do-nothing Faust agent (the
framework's own cost, our floor) and our worker with state, dedupe, aggregates, DLQ and refresh on. The agent
and our worker alternate for `rounds` rounds (each with a fresh consumer group and project), and the rates are
their means, so a change in the machine's speed during the run falls on both alike.
Rates are measured from the first event handled to the last, so start-up and group join do not count; over
that window of our worker, the cores each process used are recorded too (`cores_during_ours`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from streamrec.bench.common import bench_registry
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.kafka_dist import broker_label
from streamrec.devstack.localstack import LocalStack, free_port
from streamrec.devstack.stack import StackOptions, create_topics, service_env, start_scorer
from streamrec.errors import ConfigError
from streamrec.loadtest.cpu import CpuMeter
from streamrec.redis import sync_client
from streamrec.stream.producer import replay
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered

PARTITIONS = 4
# the do-nothing agent and ours alternate, so a change in the machine's speed falls on both alike; single rounds
# spread ±15% on a 2-core machine (docs/benchmarks.md, 2026-12-06), so the mean takes three
ROUNDS = 3


def run_ingest(events: int = 60_000, rounds: int = ROUNDS, guarantee: str = "at_least_once") -> dict[str, Any]:
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, not {rounds}")
    registry = bench_registry()
    data = generate_time_ordered(SyntheticConfig(n_sessions=events // 6 + 1, session_seed=21))[:events]
    with LocalStack() as stack:
        kafka, redis_url = stack.start_broker(), stack.start_redis()
        create_topics(kafka, PARTITIONS)
        sent = replay(data, kafka, EVENTS_TOPIC)
        assert sent.failed == 0, sent.errors
        bare = asyncio.run(bare_consumer_rate(kafka, len(data)))
        pairs: list[tuple[float, float]] = []
        for _ in range(rounds):
            baseline = faust_baseline_rate(kafka, len(data))
            ours, cpu = worker_rate(stack, kafka, redis_url, registry, len(data), guarantee)
            pairs.append((ours, baseline))
    ours, baseline = statistics.fmean(o for o, _ in pairs), statistics.fmean(b for _, b in pairs)
    return {
        "events_per_s": round(ours, 1),
        "broker": broker_label(),
        "processing_guarantee": guarantee,  # of our worker; the do-nothing agent commits at least once
        "baseline_events_per_s": round(baseline, 1),
        "ratio": round(ours / baseline, 3),
        "rounds": [[round(o, 1), round(b, 1)] for o, b in pairs],  # [ours, do-nothing agent] per round
        "bare_consumer_events_per_s": round(bare, 1),
        "events": len(data),
        "partitions": PARTITIONS,
        # cores each process used while our worker ran, in the last round (1.0 = one core): where the cores went
        "cores_during_ours": cpu.get("cores", {}),
        "machine_busy_cores": cpu.get("machine_busy_cores"),
        "data": "synthetic (training.synthetic, session_seed=21)",
    }


async def bare_consumer_rate(kafka: str, expected: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        EVENTS_TOPIC,
        bootstrap_servers=kafka,
        group_id=f"bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    seen, first = 0, 0.0
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                if seen == 0 and records:
                    first = time.perf_counter()
                seen += len(records)
    finally:
        await consumer.stop()
    return (expected - 1) / (time.perf_counter() - first)


def faust_baseline_rate(kafka: str, expected: int) -> float:
    group = f"baseline-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [sys.executable, "-m", "streamrec.bench.faust_baseline", kafka, EVENTS_TOPIC, str(expected), group],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Faust sends stdout through its logging, so the JSON line may arrive on either stream, with a log prefix
    lines = [line[line.index("{") :] for line in (out.stdout + out.stderr).splitlines() if '{"events"' in line]
    if not lines:
        raise RuntimeError(f"baseline agent failed:\n{out.stderr[-2000:]}")
    return float(json.loads(lines[-1])["events_per_s"])


def worker_rate(
    stack: LocalStack, kafka: str, redis_url: str, registry: Path, expected: int, guarantee: str
) -> tuple[float, dict[str, Any]]:
    project = f"bench{uuid.uuid4().hex[:6]}"
    port = free_port()
    options = StackOptions(project=project, partitions=PARTITIONS, processing_guarantee=guarantee)
    env = service_env(kafka, redis_url, f"127.0.0.1:{port}", registry, options)
    start_scorer(stack, env, f"127.0.0.1:{port}", name="bench-scorer")
    env["STREAMREC_STREAM_DATA_DIR"] = str(stack.state_dir / f"bench-worker-{project}")
    stack.python_module("bench-worker", ["worker"], kafka, lambda: True, env=env)
    meter = CpuMeter({name.removeprefix("bench-"): service.process.pid for name, service in stack.services.items()})
    client = sync_client(redis_url)
    try:
        rate = _watch_progress(client, f"{project}:agg:offsets:{EVENTS_TOPIC}", expected, on_first=meter.start)
        return rate, meter.stop()
    finally:  # the next round starts from nothing, with the machine to itself
        client.close()
        stack.stop_service("bench-worker")
        stack.stop_service("bench-scorer")


def _watch_progress(
    client: redis.Redis, offsets_key: str, expected: int, on_first: Callable[[], object], timeout_s: float = 600
) -> float:
    """Poll the worker's applied offsets; rate from the first progress seen (`on_first` is called then) to all
    events applied."""
    first_time, first_count = 0.0, 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        offsets: Any = client.hgetall(offsets_key)
        done = sum(int(v) + 1 for v in offsets.values())
        now = time.perf_counter()
        if done and not first_time:
            first_time, first_count = now, done
            on_first()
        if done >= expected:
            return (done - first_count) / (now - first_time)
        time.sleep(0.005)
    raise TimeoutError(f"the worker did not process {expected} events within {timeout_s}s")


if __name__ == "__main__":
    print(json.dumps(run_ingest(int(os.environ.get("EVENTS", "60000")))))
