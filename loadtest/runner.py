"""Run one scenario: replay into Kafka, storefront traffic on Recommend and both freshness probes, all at once.

The order matters for honest figures: data are loaded and the plan built before anything is timed; the
load-generator processes connect and report ready before the common start time; the replay runs in this
process on the same start time; the probes are drained after the replay, and only then is the stack stopped.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamrec.events import CanonicalEvent
from streamrec.loadtest.config import LoadtestSettings
from streamrec.loadtest.cpu import CpuMeter
from streamrec.loadtest.fleet import Fleet, FleetResult
from streamrec.loadtest.freshness import FreshnessProbe, FreshnessReport
from streamrec.loadtest.loadgen import LoadConfig, PagePlan
from streamrec.loadtest.replayer import Replayer, ReplayStats
from streamrec.loadtest.scenario import Scenario
from streamrec.loadtest.schedule import Pace, Planned, plan
from streamrec.loadtest.sources import DataSpec, load_events
from streamrec.loadtest.targets import Target, open_target
from streamrec.loadtest.visible import RecommendProbe
from streamrec.stream.producer import EventProducer

PROBE_STEP = 0.05  # a pending probe is polled again after 5 % of its age: bounded error, bounded cost
START_DELAY_S = 0.5  # between handing out the start time and the start: every process must have it by then
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Measured:
    target: Target
    replay: ReplayStats
    load: FleetResult | None
    fresh_redis: FreshnessReport
    fresh_recommend: FreshnessReport
    recommend_probe: dict[str, Any]
    tagged: int
    planned_events: int
    planned_sessions: int
    loadavg: dict[str, list[float]]
    start: float = 0.0  # perf_counter time of the common start: freshness send times are relative to it
    cpu: dict[str, Any] = field(default_factory=dict)  # cores used per process over the run (loadtest/cpu.py)


class Sampler:
    """Tags about one event in `every` after the warm-up: a session's first event, or (`quiet_s` given) also one
    whose session had no event for `quiet_s`. Either way no earlier event of the session is in flight to be
    taken for it; a first event is unambiguous however far behind the worker is, hence the default.

    At most `max_pending` probes are in flight: under overload they would otherwise pile up by the thousand
    and cost more than the system under test. `deferred` counts tags put off for that reason (a backlog sign).
    """

    def __init__(
        self,
        every: int,
        quiet_s: float,
        warmup_s: float,
        redis: FreshnessProbe,
        rec: RecommendProbe,
        start: float,
        max_pending: int = 64,
        quiet_only_first: bool = True,
    ) -> None:
        self.every, self.quiet_s, self.warmup_s, self.max_pending = every, quiet_s, warmup_s, max_pending
        self.deferred = 0
        self.quiet_only_first = quiet_only_first
        self.redis, self.rec = redis, rec
        self.last_sent: dict[str, float] = {}
        self.start = start
        self.wanted = False
        self.tagged = 0

    def on_sent(self, event: CanonicalEvent, n: int) -> None:
        now = time.perf_counter()
        previous = self.last_sent.get(event.session_id)
        self.last_sent[event.session_id] = now
        self.redis.followed(event.session_id, event.event_id)
        if now - self.start < self.warmup_s:
            return
        if n % self.every == 0:
            if self.wanted and self._full():
                self.deferred += 1
            self.wanted = True
        if self.wanted and self._eligible(event.session_id, previous, now) and not self._full():
            self.redis.sent(event.session_id, event.event_id)
            self.rec.sent(event.session_id, event.event_id)
            self.wanted = False
            self.tagged += 1

    def _eligible(self, session_id: str, previous: float | None, now: float) -> bool:
        if session_id in self.redis.pending or session_id in self.rec.pending:  # one probe per session at a time
            return False
        if previous is None:
            return True
        return not self.quiet_only_first and now - previous >= self.quiet_s

    def _full(self) -> bool:
        return max(len(self.redis.pending), len(self.rec.pending)) >= self.max_pending


def build_plan(scenario: Scenario) -> list[Planned]:
    data = scenario.data
    events = load_events(DataSpec(data.source, data.data_dir, data.sessions, data.seed))
    tag = {"auto": uuid.uuid4().hex[:6], "none": ""}.get(scenario.replay.tag, scenario.replay.tag)
    pace = Pace(scenario.replay.rate, scenario.replay.speedup)
    return list(plan(events, pace, duration_s=scenario.duration_s, repeat=scenario.replay.repeat, tag=tag))


def run_scenario(
    scenario: Scenario, registry: Path | None = None, progress: bool = False, log: Log = _stderr
) -> Measured:
    """Load the data, open the target, run everything for the scenario's duration; returns the raw measurements."""
    planned = build_plan(scenario)
    log(f"{scenario.name}: {len(planned)} events planned over {scenario.duration_s:g} s from {scenario.data.source}")
    loadavg = {"before": list(os.getloadavg())}
    with open_target(scenario.target, registry, log) as target:
        measured = _measure(scenario, target, planned, progress, log)
    measured.loadavg = {**loadavg, **measured.loadavg}
    return measured


def _measure(scenario: Scenario, target: Target, planned: list[Planned], progress: bool, log: Log) -> Measured:
    rec, fresh = scenario.recommend, scenario.freshness
    metadata = LoadtestSettings().scorer_metadata()
    with contextlib.ExitStack() as cleanup:
        fleet = None
        if rec.rate > 0:
            config = LoadConfig(
                target.grpc,
                rec.rate,
                scenario.duration_s,
                scenario.warmup_s,
                k=rec.k,
                deadline_s=rec.deadline_ms / 1000,
                max_inflight=rec.max_inflight,
                metadata=metadata,
            )
            fleet = cleanup.enter_context(Fleet(config, PagePlan.from_planned(planned, rec.window_s), rec.processes))
            fleet.start()
        redis_probe = FreshnessProbe(target.redis, target.project, relative_step=PROBE_STEP).start()
        rec_probe = RecommendProbe(
            target.grpc,
            fresh.poll_ms / 1000,
            rec.k,
            relative_step=PROBE_STEP,
            max_calls_per_s=fresh.max_calls_per_s,
            metadata=metadata,
        ).start()
        cleanup.callback(rec_probe.stop, 0.0)  # no-ops once stopped below; on an error they end the threads
        cleanup.callback(redis_probe.stop, 0.0)
        producer = EventProducer(target.kafka, target.topic)
        loadavg = {"start": list(os.getloadavg())}
        meter = CpuMeter({**target.processes, "loadtest": os.getpid(), **(fleet.pids() if fleet else {})}).start()
        start_wall = time.time() + START_DELAY_S
        if fleet is not None:
            fleet.go(start_wall)
        start = time.perf_counter() + (start_wall - time.time())
        sampler = Sampler(
            fresh.sample_every,
            fresh.quiet_s,
            scenario.warmup_s,
            redis_probe,
            rec_probe,
            start,
            fresh.max_pending,
            fresh.tag_events == "first",
        )
        replayer = Replayer(producer, scenario.replay.keep_timestamps, on_sent=sampler.on_sent, progress=progress)
        log(f"running for {scenario.duration_s:g} s against the {target.kind} stack (project {target.project})")
        stats = replayer.run(planned, start=start, total=len(planned), stop_after_s=scenario.duration_s)
        loadavg["end"] = list(os.getloadavg())
        cpu = meter.stop()
        fresh_redis = redis_probe.stop(fresh.drain_s)
        fresh_rec = rec_probe.stop(fresh.drain_s)
        load = fleet.collect(timeout_s=scenario.duration_s + rec.deadline_ms / 1000 + 60) if fleet else None
    probe_meta = {
        "calls": rec_probe.calls,
        "errors": dict(rec_probe.errors),
        "sources": dict(rec_probe.sources),
        "deferred_tags": sampler.deferred,
    }
    return Measured(
        target,
        stats,
        load,
        fresh_redis,
        fresh_rec,
        probe_meta,
        sampler.tagged,
        len(planned),
        len({p.event.session_id for p in planned}),
        loadavg,
        start,
        cpu,
    )
