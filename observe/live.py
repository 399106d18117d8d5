"""The live page's figures: rolling windows of freshness and Recommend latency, rates, and a one-second series.

Pure bookkeeping (no I/O), so it is tested with hand-made numbers; web.py feeds it from the tail reader, the
freshness tracker, the Recommend probe and the /metrics scrapes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamrec.observe import scrape

SERIES_POINTS = 300  # five minutes of one-second points on the page's charts
RATE_SPAN_S = 5.0  # rates are averaged over this much: smooth enough to read, quick enough to follow a change


class Window:
    """Values with their times, kept for `span_s`; percentiles over what is left."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self.items: deque[tuple[float, float]] = deque()

    def add(self, value: float, now: float) -> None:
        self.items.append((now, value))
        self.prune(now)

    def prune(self, now: float) -> None:
        while self.items and self.items[0][0] < now - self.span_s:
            self.items.popleft()

    def percentile(self, q: float) -> float | None:
        if not self.items:
            return None
        return float(np.percentile([v for _, v in self.items], q))

    def __len__(self) -> int:
        return len(self.items)


class Rate:
    """Per-second rate of a growing total, over the last `span_s` of readings; a reset starts afresh."""

    def __init__(self, span_s: float = RATE_SPAN_S) -> None:
        self.span_s = span_s
        self.readings: deque[tuple[float, float]] = deque()

    def add(self, total: float, now: float) -> float | None:
        if self.readings and total < self.readings[-1][1]:
            self.readings.clear()  # the process restarted, its counters with it
        self.readings.append((now, total))
        while len(self.readings) > 2 and self.readings[1][0] <= now - self.span_s:
            self.readings.popleft()
        (t0, v0), (t1, v1) = self.readings[0], self.readings[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else None


@dataclass
class Inputs:
    """What the ticker gathered this second; None where a source is not available."""

    produced_total: int
    processed_total: float | None = None
    processed_source: str = "none"  # "metrics" (worker /metrics) or "offsets" (committed offsets)
    lag: int | None = None
    server_buckets: dict[float, float] | None = None  # the scorer's Recommend histogram, cumulative


@dataclass
class LiveFigures:
    window_s: float = 60.0
    freshness: Window = field(init=False)
    recommend: Window = field(init=False)
    search: Window = field(init=False)
    series: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=SERIES_POINTS))
    missing: int = 0
    storefront_clicks: int = 0

    def __post_init__(self) -> None:
        self.freshness = Window(self.window_s)
        self.recommend = Window(self.window_s)
        self.search = Window(self.window_s)
        self._produced = Rate()
        self._processed = Rate()
        self._server: deque[tuple[float, dict[float, float]]] = deque()

    def record_freshness(self, latency_ms: float | None, now: float) -> None:
        if latency_ms is None:
            self.missing += 1
        else:
            self.freshness.add(latency_ms, now)

    def record_recommend(self, latency_ms: float, now: float) -> None:
        self.recommend.add(latency_ms, now)

    def record_search(self, latency_ms: float, now: float) -> None:
        self.search.add(latency_ms, now)

    def tick(self, inputs: Inputs, now: float) -> dict[str, Any]:
        """One point of the series, appended and returned."""
        self.freshness.prune(now)
        self.recommend.prune(now)
        self.search.prune(now)
        processed = None if inputs.processed_total is None else self._processed.add(inputs.processed_total, now)
        point = {
            "t": now,
            "produced_per_s": _round(self._produced.add(inputs.produced_total, now)),
            "processed_per_s": _round(processed),
            "processed_source": inputs.processed_source,
            "lag": inputs.lag,
            "freshness_p50_ms": _round(self.freshness.percentile(50)),
            "freshness_p99_ms": _round(self.freshness.percentile(99)),
            "freshness_n": len(self.freshness),
            "recommend_p50_ms": _round(self.recommend.percentile(50)),
            "recommend_p99_ms": _round(self.recommend.percentile(99)),
            "recommend_n": len(self.recommend),
            "search_p50_ms": _round(self.search.percentile(50)),
            "search_p99_ms": _round(self.search.percentile(99)),
            "search_n": len(self.search),
            "server_recommend_p99_ms": _round(self._server_p99(inputs.server_buckets, now)),
        }
        self.series.append(point)
        return point

    def _server_p99(self, cumulative: dict[float, float] | None, now: float) -> float | None:
        """p99 of the scorer's own Recommend timings over the window, from two scrapes of its histogram."""
        if cumulative is None:
            return None
        self._server.append((now, cumulative))
        while len(self._server) > 2 and self._server[1][0] <= now - self.window_s:
            self._server.popleft()
        seconds = scrape.quantile(0.99, scrape.bucket_delta(cumulative, self._server[0][1]))
        return None if math.isnan(seconds) else seconds * 1000

    def snapshot(self) -> dict[str, Any]:
        return {
            "now": self.series[-1] if self.series else None,
            "series": list(self.series),
            "window_s": self.window_s,
            "freshness_missing": self.missing,
            "storefront_clicks": self.storefront_clicks,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
