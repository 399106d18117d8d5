"""Freshness probe: how long from producing an event until the refresh it caused is readable in Redis.

The producer side calls `sent(session_id, event_id)` right after handing a sampled event to Kafka; a
background thread polls the sessions' recommendation keys with MGET every `poll_s` and records, per event,
the time at which a list caused by that event (or a later one of the same session) became visible.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import redis

from features.session_store import Recommendations, recs_key


@dataclass
class FreshnessReport:
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, float | int]:
        return {"events": len(self.latencies_ms), "missing": self.missing, "p50_ms": round(self.percentile(50), 2),
                "p90_ms": round(self.percentile(90), 2), "p99_ms": round(self.percentile(99), 2),
                "max_ms": round(max(self.latencies_ms, default=float("nan")), 2)}  # fmt: skip


class FreshnessProbe:
    def __init__(self, redis_url: str, project: str, poll_s: float = 0.0005) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.project = project
        self.poll_s = poll_s
        self.pending: dict[str, tuple[str, float, int]] = {}  # session -> (event_id, sent_at, sequence)
        self.sequence: dict[str, int] = {}
        self.report = FreshnessReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="freshness-probe", daemon=True)

    def start(self) -> FreshnessProbe:
        self._thread.start()
        return self

    def sent(self, session_id: str, event_id: str) -> None:
        with self._lock:
            if session_id in self.pending:  # one probe per session at a time keeps the match unambiguous
                return
            self.pending[session_id] = (event_id, time.perf_counter(), 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                sessions = list(self.pending)
            if sessions:
                values = cast("list[bytes | None]", self.client.mget([recs_key(self.project, s) for s in sessions]))
                now = time.perf_counter()
                with self._lock:
                    for sid, raw in zip(sessions, values, strict=True):
                        if raw and Recommendations.from_json(raw).event_id == self.pending[sid][0]:
                            self.report.latencies_ms.append((now - self.pending.pop(sid)[1]) * 1000)
            time.sleep(self.poll_s)

    def stop(self, drain_s: float = 5.0) -> FreshnessReport:
        deadline = time.monotonic() + drain_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self._thread.join()
        self.report.missing = len(self.pending)
        self.client.close()
        return self.report
