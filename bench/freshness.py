"""`streamrec bench freshness`: event produced -> refreshed recommendations readable in Redis, at a fixed rate.

The whole local stack runs (broker, Redis, scorer, one worker); synthetic events are published at `rate`
events/s for `seconds`, and a sample of them is probed (loadtest/freshness.py). The baseline is the bare
delivery time of the same broker: produce -> a plain aiokafka consumer sees the record, measured in the same
run with the same fetch wait, so `p99_over_delivery` says what our processing adds on top of Kafka itself.

That baseline runs on a fresh topic after the measured window, with the machine otherwise idle, so it flatters
the broker. So the run ends with the like-for-like floor (`broker_only_*`): a fresh broker alone gets the
same events at the same rate for as long, from the same producer, and a plain aiokafka consumer with the same
fetch wait reads them, no worker and nothing else running; `p99_over_broker_only` is then what the pipeline
adds to the broker under this very load. The worker's own histograms over the window split the figure:
`worker_fetched_*` (record timestamp -> the worker's consumer receives it: producer linger and the broker,
during the run itself), `worker_pickup_*` (-> its batch starts: plus Faust's hand-over and the batch ahead)
and `worker_written_*` (-> its writes are done); `cores_during_run` says how many cores each process used
over the window (1.0 = one core; `broker_cpu_share` is the broker's) and `machine_busy_cores` the whole
machine's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from streamrec.bench.common import bench_registry
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.kafka_dist import broker_label
from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.stack import StackOptions, create_topics, start_stack
from streamrec.events import CanonicalEvent
from streamrec.loadtest.cpu import CpuMeter
from streamrec.loadtest.freshness import FreshnessProbe
from streamrec.observe.scrape import Sample, bucket_delta, buckets, fetch_text, parse, quantile
from streamrec.stream.config import StreamSettings
from streamrec.stream.producer import PRODUCER_DEFAULTS, EventProducer, pace
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered

SAMPLE_EVERY = 10  # probe one event in ten


def run_freshness(
    rate: float = 1000.0, seconds: float = 30.0, warmup_s: float = 5.0, guarantee: str = "at_least_once"
) -> dict[str, Any]:
    registry = bench_registry()
    total = int(rate * (seconds + warmup_s))
    events = generate_time_ordered(SyntheticConfig(n_sessions=total // 5 + 1, session_seed=51))[:total]
    now = int(time.time() * 1000)
    shift = now - events[-1].ts_ms  # bring event times to the present, as live traffic would have
    warm = max(int(rate * warmup_s), 1)  # events sent before the measured window
    with LocalStack() as stack:
        project = f"fresh{uuid.uuid4().hex[:6]}"
        options = StackOptions(project=project, registry=registry, processing_guarantee=guarantee)
        stack_info = start_stack(stack, options)
        # poll each probe at 5% of its age (>= 1 ms): ms resolution early on, little CPU taken from the worker
        probe = FreshnessProbe(stack_info.redis, stack_info.project, poll_s=0.001, relative_step=0.05).start()
        worker = Scraper(stack_info.metrics["worker"], stack_info.processes)

        def sent(n: int, live: CanonicalEvent) -> None:
            if n == warm - 1:
                worker.mark()
            if n >= warm and n % SAMPLE_EVERY == 0:
                probe.sent(live.session_id, live.event_id)
            else:  # a list caused by a later event of a probed session shows the probed one too
                probe.followed(live.session_id, live.event_id)

        produce_paced(stack_info.kafka, events, shift, rate, sent)
        report = probe.stop()
        inside = worker.since_mark()
        delivery = asyncio.run(delivery_baseline(stack_info.kafka, rate))
        broker_start_s = stack.broker_started_s
    floor = broker_only(events, shift, rate, warm, StackOptions().partitions)
    summary = report.summary()
    return {
        **summary,
        "broker": broker_label(),
        "broker_start_s": round(broker_start_s, 2),
        "processing_guarantee": guarantee,
        "rate_events_per_s": rate,
        "seconds": seconds,
        **_baseline("delivery", delivery, summary["p99_ms"]),
        **_baseline("broker_only", floor, summary["p99_ms"]),
        **inside,
        "fetch_max_wait_ms": fetch_max_wait_ms(),
        "producer_linger_ms": PRODUCER_DEFAULTS["linger.ms"],
        "data": "synthetic (training.synthetic, session_seed=51), event times shifted to now",
    }


def _baseline(name: str, latencies_ms: list[float], p99_ms: float) -> dict[str, float]:
    """A baseline's p50 and p99, and our p99 over its p99 (`p99_over_<name>`)."""
    p50, p99 = (float(np.percentile(latencies_ms, q)) for q in (50, 99))
    return {
        f"{name}_p50_ms": round(p50, 2),
        f"{name}_p99_ms": round(p99, 2),
        f"p99_over_{name}": round(p99_ms / max(p99, 1e-3), 2),
    }


class Scraper:
    """The worker's own view over the measured window: when records reached its consumer, when it picked them
    up and when their writes were done (its histograms, so as fine as their buckets), and the cores each
    process of the run used meanwhile (this bench's own process, producer and probe, as `bench`)."""

    def __init__(self, metrics_endpoint: str, processes: dict[str, int]) -> None:
        self.endpoint = metrics_endpoint
        self.cpu = CpuMeter({**processes, "bench": os.getpid()})
        self.start: list[Sample] | None = None

    def mark(self) -> None:
        self.start = parse(fetch_text(self.endpoint))
        self.cpu.start()

    def since_mark(self) -> dict[str, Any]:
        assert self.start is not None, "mark() first"
        old, new, cpu = self.start, parse(fetch_text(self.endpoint)), self.cpu.stop()
        out: dict[str, Any] = {}
        for key, histogram in (
            ("worker_fetched", "streamrec_worker_fetched_seconds"),
            ("worker_pickup", "streamrec_worker_pickup_seconds"),
            ("worker_written", "streamrec_worker_freshness_seconds"),
        ):
            delta = bucket_delta(buckets(new, histogram), buckets(old, histogram))
            for q in (50, 99):
                out[f"{key}_p{q}_ms"] = round(quantile(q / 100, delta) * 1000, 1)
        cores = cpu.get("cores", {})
        out["broker_cpu_share"] = cores.get("broker")
        out["cores_during_run"] = cores  # 1.0 = one core; on two cores, what the broker shares them with
        out["machine_busy_cores"] = cpu.get("machine_busy_cores")
        return out


def fetch_max_wait_ms() -> int:
    """The worker's fetch wait as it will read it (the stack passes this environment on)."""
    return StreamSettings().fetch_max_wait_ms


async def delivery_baseline(kafka: str, rate: float, samples: int = 300) -> list[float]:
    """Produce -> consumed by a plain aiokafka consumer, one record at a time at `rate`, same fetch wait."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"bench.delivery.{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=0)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, fetch_max_wait_ms=fetch_max_wait_ms(), auto_offset_reset="latest", group_id=None
    )
    await producer.start()
    await producer.send_and_wait(topic, b"create")
    await consumer.start()
    await asyncio.sleep(1.0)
    latencies = []
    try:
        for _ in range(samples):
            sent = time.perf_counter()
            await producer.send(topic, b"x")
            await consumer.getone()
            latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(1 / rate)
    finally:
        await consumer.stop()
        await producer.stop()
    return latencies


def broker_only(events: list[CanonicalEvent], shift: int, rate: float, warm: int, partitions: int) -> list[float]:
    """The broker's own delivery under the run's load: on a fresh broker, the same events at the same rate from
    the same producer, read by a plain aiokafka consumer (same fetch wait); produce -> consumed in ms, per record
    after the first `warm`, from the record's CreateTime (set when it was handed to the producer)."""
    with LocalStack() as stack:
        kafka = stack.start_broker()
        create_topics(kafka, partitions)
        return asyncio.run(_consume_while_producing(kafka, events, shift, rate, warm))


async def _consume_while_producing(
    kafka: str, events: list[CanonicalEvent], shift: int, rate: float, warm: int
) -> list[float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        EVENTS_TOPIC,
        bootstrap_servers=kafka,
        group_id=f"floor-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms(),
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        while not consumer.assignment():  # the dev broker's group join takes about half the session timeout
            await consumer.getmany(timeout_ms=100)
        warm_from_ms: list[float] = []  # when the warm-up ended, as wall-clock ms like the records' CreateTime

        def sent(n: int, live: CanonicalEvent) -> None:
            if n == warm - 1:
                warm_from_ms.append(time.time() * 1000)

        producing = asyncio.create_task(asyncio.to_thread(produce_paced, kafka, events, shift, rate, sent))
        latencies: list[float] = []
        seen = 0
        while seen < len(events):
            batches = await consumer.getmany(timeout_ms=1000)
            now_ms = time.time() * 1000
            if not batches and producing.done():
                break  # everything produced has been read, or the broker stopped delivering: report what came
            for records in batches.values():
                seen += len(records)
                if warm_from_ms:
                    latencies += [now_ms - r.timestamp for r in records if r.timestamp >= warm_from_ms[0]]
        await producing
    finally:
        await consumer.stop()
    if not latencies:
        raise RuntimeError("the broker-only run delivered no records after its warm-up")
    return latencies


def produce_paced(
    kafka: str, events: list[CanonicalEvent], shift: int, rate: float, sent: Callable[[int, CanonicalEvent], None]
) -> None:
    """Publish `events` at `rate` with their times moved by `shift` ms, calling `sent(n, event)` after each."""
    producer = EventProducer(kafka, EVENTS_TOPIC)
    start = time.perf_counter()
    for n, event in enumerate(events):
        pace(start, n, rate)
        live = dataclasses.replace(event, ts_ms=event.ts_ms + shift)
        producer.send(live.session_id, live.to_bytes())
        sent(n, live)
    producer.flush(30)
