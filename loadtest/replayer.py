"""Send planned events into Kafka on time, keyed by session; count, checksum and time what was sent.

The checksum is sha256 over the sent event ids in send order (one per line), the same definition as
`streamrec.stream.producer.replay`, so a run can be matched against what a worker saw. Event times are rebased to
the wall clock at send by default: the worker rejects events older than its `max_event_age_ms` (400 days),
and a replayed 2014 clickstream is live traffic as far as the rest of the system is concerned.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamrec.events import CanonicalEvent
from streamrec.loadtest.schedule import Planned
from streamrec.stream.producer import EventProducer

SentHook = Callable[[CanonicalEvent, int], None]  # (event as sent, its index in the run)
FLUSH_TIMEOUT_S = 60.0


@dataclass
class ReplayStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0
    checksum: str = ""
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)
    per_second: list[int] = field(default_factory=list)  # events handed to the producer in each second
    lag_ms: list[float] = field(default_factory=list)  # send time minus due time, per event (paced runs)

    def summary(self) -> dict[str, Any]:
        lag = np.asarray(self.lag_ms) if self.lag_ms else np.zeros(1)
        rate = round(self.sent / self.seconds, 1) if self.seconds else 0.0
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "events_per_s": rate,
            "checksum": self.checksum,
            "interrupted": self.interrupted,
            "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 2),
            "send_lag_max_ms": round(float(lag.max()), 2),
        }


class Replayer:
    """One pass over a plan; `start` (a perf_counter time) lets other processes align with the replay."""

    def __init__(
        self,
        producer: EventProducer,
        keep_timestamps: bool = False,
        on_sent: SentHook | None = None,
        progress: bool = False,
    ) -> None:
        self.producer = producer
        self.keep_timestamps = keep_timestamps
        self.on_sent = on_sent
        self.progress = progress

    def run(
        self,
        planned: Iterable[Planned],
        start: float | None = None,
        total: int | None = None,
        stop_after_s: float | None = None,
    ) -> ReplayStats:
        stats = ReplayStats()
        digest = hashlib.sha256()
        start = time.perf_counter() if start is None else start
        bar = _bar(total) if self.progress else None
        try:
            for n, item in enumerate(planned):
                # the schedule decides, not the clock: a generator that fell behind still sends every event
                # planned within the duration (its lag is reported), so a slow machine never drops the tail
                if stop_after_s is not None and item.offset_s >= stop_after_s:
                    break
                now = self._wait(start + item.offset_s)
                if item.offset_s:
                    stats.lag_ms.append((now - start - item.offset_s) * 1000)
                event = self._send(item.event)
                digest.update(event.event_id.encode() + b"\n")
                stats.sent += 1
                _count_second(stats.per_second, int(now - start))
                if self.on_sent is not None:
                    self.on_sent(event, n)
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:  # a long replay stopped by hand still reports exactly what it sent
            stats.interrupted = True
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        stats.seconds = max(0.0, time.perf_counter() - start)
        stats.delivered = self.producer.delivered
        stats.failed = len(self.producer.failed) + remaining
        stats.errors = self.producer.failed[:10]
        stats.checksum = digest.hexdigest()
        if bar is not None:
            bar.close()
        return stats

    def _wait(self, due: float) -> float:
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
            now = time.perf_counter()
        return now

    def _send(self, event: CanonicalEvent) -> CanonicalEvent:
        message = event.to_proto()
        if not self.keep_timestamps:
            message.ts_ms = int(time.time() * 1000)
        self.producer.send(event.session_id, message.SerializeToString())
        return event


def _count_second(per_second: list[int], second: int) -> None:
    while len(per_second) <= second:
        per_second.append(0)
    per_second[second] += 1


def _bar(total: int | None):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, unit="ev", desc="replay", file=sys.stderr, mininterval=0.5)
