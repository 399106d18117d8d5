"""Freshness probe: how long from producing an event until the refresh it caused is readable in Redis.

The producer side calls `sent(session_id, event_id)` right after handing a sampled event to Kafka; a
background thread polls the sessions' recommendation keys with MGET every `poll_s` and records, per event,
the time at which a list caused by that event (or a later one of the same session) became visible. A
producer that sends further events of a probed session reports them with `followed(session_id, event_id)`:
the worker may fold them into the same batch, and the list it then writes names the last of them.

Under overload many probes are pending for seconds; polling each of them every 0.5 ms would then cost more
than the system under test. With `relative_step` > 0 a pending session is polled again only after that
fraction of its age (0.05: at most 5 % error on its latency), and an unchanged value is not decoded again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from streamrec.features.session_store import Recommendations, recs_key
from streamrec.loadtest.probe_thread import ProbeThread
from streamrec.redis import sync_client


@dataclass
class FreshnessReport:
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    sent_at: list[float] = field(default_factory=list)  # perf_counter send time of each latency, same order

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, float | int]:
        return {
            "events": len(self.latencies_ms),
            "missing": self.missing,
            "p50_ms": round(self.percentile(50), 2),
            "p90_ms": round(self.percentile(90), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 2),
        }


class FreshnessProbe(ProbeThread[tuple[str, float, int]]):  # session -> (event_id, sent_at, sequence)
    def __init__(self, redis_url: str, project: str, poll_s: float = 0.0005, relative_step: float = 0.0) -> None:
        super().__init__("freshness-probe")
        self.client = sync_client(redis_url)
        self.project = project
        self.poll_s = poll_s
        self.relative_step = relative_step
        self.due: dict[str, float] = {}  # session -> when to poll it next (perf_counter)
        self.seen_raw: dict[str, bytes] = {}  # session -> the value its last poll saw
        self.sequence: dict[str, int] = {}
        self.later: dict[str, set[str]] = {}  # session -> ids sent after its probed event (see `followed`)
        self.report = FreshnessReport()

    def start(self) -> FreshnessProbe:
        self._start_thread()
        return self

    def sent(self, session_id: str, event_id: str) -> None:
        with self._lock:
            if session_id in self.pending:  # one probe per session at a time keeps the match unambiguous;
                if event_id != self.pending[session_id][0]:  # this event then counts as one that follows it
                    self.later.setdefault(session_id, set()).add(event_id)
                return
            self.pending[session_id] = (event_id, time.perf_counter(), 0)
        self._wake_up()

    def followed(self, session_id: str, event_id: str) -> None:
        """`event_id` of a session with a pending probe was sent after it: a list caused by it counts too."""
        if session_id in self.pending:  # unlocked peek: most events belong to sessions without a probe
            with self._lock:
                if session_id in self.pending and event_id != self.pending[session_id][0]:
                    self.later.setdefault(session_id, set()).add(event_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            with self._lock:
                sessions = [s for s in self.pending if self.due.get(s, 0.0) <= started]
            if sessions:
                values = cast("list[bytes | None]", self.client.mget([recs_key(self.project, s) for s in sessions]))
                now = time.perf_counter()
                with self._lock:
                    for sid, raw in zip(sessions, values, strict=True):
                        self._check(sid, raw, now)
            self._sleep()

    def _sleep(self) -> None:
        """Until the next poll is due (at least `poll_s`); a new probe (`sent`) wakes the thread at once."""
        with self._lock:
            next_due = min((self.due.get(s, 0.0) for s in self.pending), default=float("inf"))
        self._wait_for_next(next_due, self.poll_s)

    def _check(self, session_id: str, raw: bytes | None, now: float) -> None:
        sent_at = self.pending[session_id][1]
        if raw and raw != self.seen_raw.get(session_id):
            if self._caused_by_probe(session_id, Recommendations.from_json(raw).event_id):
                self.report.latencies_ms.append((now - sent_at) * 1000)
                self.report.sent_at.append(sent_at)
                for table in (self.pending, self.later, self.due, self.seen_raw):
                    table.pop(session_id, None)
                return
            self.seen_raw[session_id] = raw
        self.due[session_id] = now + self.relative_step * (now - sent_at)

    def _caused_by_probe(self, session_id: str, event_id: str) -> bool:
        return event_id == self.pending[session_id][0] or event_id in self.later.get(session_id, ())

    def stop(self, drain_s: float = 5.0) -> FreshnessReport:
        self._drain_and_join(drain_s)
        self.report.missing = len(self.pending)
        self.client.close()
        return self.report
