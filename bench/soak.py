"""`python -m streamrec.bench.soak`: the local stack under steady replay and Recommend load; does memory creep?

One run of N minutes: broker, Redis, scorer and one worker (`streamrec.devstack.stack.start_stack`); synthetic
events are published at `events_per_s` (fresh sessions all along, dated now, as live traffic would be) and
storefront page views call Recommend at `recommends_per_s` on recently active sessions. The RSS of the worker and
the scorer is sampled every `sample_s` seconds. Per process the result holds RSS at start, end and peak, and the
slope of a least-squares line through the samples of the second half of the run (the first half includes warm-up:
caches, arenas, JIT-less Python's one-off growth). A process is within bound when that slope is at most
SLOPE_BOUND_MB_PER_MIN.

The baseline is the start RSS of each process, so `end_over_start` says how much the run added.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from streamrec.bench.common import bench_registry, emit
from streamrec.channels import insecure_scorer_channel
from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.stack import StackOptions, start_stack
from streamrec.events import CanonicalEvent
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.stream.producer import ReplayResult, replay
from streamrec.training.synthetic import SyntheticConfig, generate_time_ordered

SLOPE_BOUND_MB_PER_MIN = 1.0  # over the second half; see docs/reliability.md for why this figure
SESSIONS_PER_CYCLE = 2000  # the event source draws this many new sessions at a time, endlessly
RECENT_SESSIONS = 500  # page views go to the sessions most recently given events


@dataclasses.dataclass
class Samples:
    """RSS samples per process name: (seconds since start, MiB)."""

    series: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)

    def add(self, name: str, at_s: float, mb: float) -> None:
        self.series.setdefault(name, []).append((at_s, mb))


def rss_mb(pid: int) -> float:
    """Resident set size in MiB from /proc/PID/status (VmRSS, in kB); 0 when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of MiB over minutes through the second half of the points (0 with fewer than 2)."""
    half = points[len(points) // 2 :]
    if len(half) < 2:
        return 0.0
    t = np.array([s for s, _ in half]) / 60.0
    mb = np.array([m for _, m in half])
    return float(np.polyfit(t, mb, 1)[0])


def summarise(points: list[tuple[float, float]]) -> dict[str, Any]:
    values = [mb for _, mb in points]
    slope = slope_mb_per_min(points)
    return {
        "rss_start_mb": round(values[0], 1),
        "rss_end_mb": round(values[-1], 1),
        "rss_max_mb": round(max(values), 1),
        "end_over_start": round(values[-1] / values[0], 3),
        "slope_mb_per_min": round(slope, 3),
        "within_bound": slope <= SLOPE_BOUND_MB_PER_MIN,
    }


class EventSource:
    """Endless synthetic traffic: cycles of fresh sessions in event-time order, each event dated when it is sent.

    `recent` holds the sessions most recently given an event, for the page views to ask about.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT_SESSIONS)
        self.sent = 0

    def __iter__(self) -> Iterator[CanonicalEvent]:
        cycle = 0
        while not self.stop.is_set():
            config = SyntheticConfig(n_sessions=SESSIONS_PER_CYCLE, session_seed=10_000 + cycle)
            for event in generate_time_ordered(config):
                if self.stop.is_set():
                    return
                self.recent.append(event.session_id)
                self.sent += 1
                yield dataclasses.replace(event, ts_ms=int(time.time() * 1000))
            cycle += 1


@dataclasses.dataclass
class PageViews:
    """Recommend at a fixed rate on recently active sessions; counts answers and errors, keeps latencies."""

    address: str
    rate: float
    source: EventSource
    stop: threading.Event
    ok: int = 0
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    latencies_ms: list[float] = dataclasses.field(default_factory=list)

    def run(self) -> None:
        with insecure_scorer_channel(self.address) as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            start, n = time.perf_counter(), 0
            while not self.stop.is_set():
                delay = start + n / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                n += 1
                session = self.source.recent[-1 - n % len(self.source.recent)] if self.source.recent else "cold"
                self._one(stub, pb.RecommendRequest(session_id=session, k=20))

    def _one(self, stub: recommender_pb2_grpc.RecommenderStub, request: pb.RecommendRequest) -> None:
        began = time.perf_counter()
        try:
            stub.Recommend(request, timeout=1.0)
        except grpc.RpcError as exc:  # the client edge: a failed page view is counted, the load goes on
            self.errors[exc.code().name] += 1
            return
        self.ok += 1
        if len(self.latencies_ms) < 2_000_000:  # ~16 MB at most for the longest soaks
            self.latencies_ms.append((time.perf_counter() - began) * 1000)


def run_soak(
    minutes: float = 10.0, events_per_s: float = 200.0, recommends_per_s: float = 100.0, sample_s: float = 5.0
) -> dict[str, Any]:
    registry = bench_registry()
    stop = threading.Event()
    source = EventSource(stop)
    result: list[ReplayResult] = []
    with LocalStack() as stack:
        info = start_stack(stack, StackOptions(project=f"soak{uuid.uuid4().hex[:6]}", registry=registry))
        pids = {name: stack.services[name].process.pid for name in ("worker", "scorer")}
        views = PageViews(info.grpc, recommends_per_s, source, stop)
        threads = [
            threading.Thread(
                target=lambda: result.append(replay(source, info.kafka, EVENTS_TOPIC, rate=events_per_s)),
                name="soak-replay",
                daemon=True,
            ),
            threading.Thread(target=views.run, name="soak-page-views", daemon=True),
        ]
        for thread in threads:
            thread.start()
        samples = sample_until(pids, minutes * 60, sample_s, stack)
        stop.set()
        for thread in threads:
            thread.join(60)
        alive = {name: stack.services[name].alive() for name in pids}

    latencies = np.array(views.latencies_ms or [0.0])
    return {
        "figure": "soak_rss",
        "minutes": minutes,
        "events_per_s": events_per_s,
        "recommends_per_s": recommends_per_s,
        "slope_bound_mb_per_min": SLOPE_BOUND_MB_PER_MIN,
        **{name: summarise(samples.series[name]) for name in pids},
        "within_bound": all(summarise(samples.series[name])["within_bound"] for name in pids),
        "processes_alive": alive,
        "events_sent": source.sent,
        "events_failed": result[0].failed if result else None,
        "recommends_ok": views.ok,
        "recommend_errors": dict(views.errors),
        "recommend_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "recommend_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "samples": len(samples.series["worker"]),
    }


def sample_until(pids: dict[str, int], seconds: float, every_s: float, stack: LocalStack) -> Samples:
    """RSS of each process every `every_s` seconds for `seconds`; stops early if a process dies."""
    samples = Samples()
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        for name, pid in pids.items():
            samples.add(name, elapsed, rss_mb(pid))
        if not all(stack.services[name].alive() for name in pids):
            break
        time.sleep(max(0.0, every_s - (time.monotonic() - start - elapsed)))
    for name, pid in pids.items():
        samples.add(name, time.monotonic() - start, rss_mb(pid))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamrec.bench.soak", description="the local stack under load, RSS sampled"
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--events-per-s", type=float, default=200.0)
    parser.add_argument("--recommends-per-s", type=float, default=100.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    emit(run_soak(args.minutes, args.events_per_s, args.recommends_per_s, args.sample_s), as_json=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
