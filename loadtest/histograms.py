"""HDR latency histograms (the `hdrhistogram` package): recording, lossless encoding across processes, merging.

Latencies are recorded in microseconds from 1 µs to 10 minutes at 3 significant digits (0.1 % error), the
usual HdrHistogram set-up. Every load-generator process records into its own histograms and sends them back
encoded; the parent merges them by adding counts, which is exact (no averaging of percentiles).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_seconds(histogram: HdrHistogram, seconds: float) -> None:
    """Record a duration; values beyond the range are clamped, not dropped (a lost outlier hides a stall)."""
    histogram.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))


def encode(histogram: HdrHistogram) -> str:
    return bytes(histogram.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    histogram = new_histogram()
    if text:
        histogram.decode_and_add(text.encode("ascii"))
    return histogram


def merge(texts: list[str]) -> HdrHistogram:
    total = new_histogram()
    for text in texts:
        if text:
            total.decode_and_add(text.encode("ascii"))
    return total


def summary_ms(histogram: HdrHistogram) -> dict[str, float | int]:
    """Count, mean and percentiles in milliseconds (NaN-free: an empty histogram gives zeros)."""
    count = histogram.get_total_count()
    out: dict[str, float | int] = {"count": int(count)}
    for q in PERCENTILES:
        out[f"p{q:g}_ms"] = round(histogram.get_value_at_percentile(q) / 1000, 3) if count else 0.0
    out["max_ms"] = round(histogram.get_max_value() / 1000, 3) if count else 0.0
    out["mean_ms"] = round(histogram.get_mean_value() / 1000, 3) if count else 0.0
    return out


@dataclass
class Timeline:
    """Per-second buckets of one run: latency by intended second, completions by completion second."""

    latency: dict[int, HdrHistogram] = field(default_factory=dict)
    issued: Counter[int] = field(default_factory=Counter)
    ok: Counter[int] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)

    def record(self, intended_s: float, done_s: float, latency_s: float, ok: bool) -> None:
        second = int(intended_s)
        self.issued[second] += 1
        if ok:
            if second not in self.latency:
                self.latency[second] = new_histogram()
            record_seconds(self.latency[second], latency_s)
            self.ok[int(done_s)] += 1
        else:
            self.errors[int(done_s)] += 1

    def encode(self) -> dict[str, Any]:
        return {
            "latency": {str(s): encode(h) for s, h in self.latency.items()},
            "issued": {str(s): n for s, n in self.issued.items()},
            "ok": {str(s): n for s, n in self.ok.items()},
            "errors": {str(s): n for s, n in self.errors.items()},
        }

    def add_encoded(self, data: dict[str, Any]) -> None:
        for second, text in data["latency"].items():
            self.latency.setdefault(int(second), new_histogram()).decode_and_add(text.encode("ascii"))
        for name in ("issued", "ok", "errors"):
            counter: Counter[int] = getattr(self, name)
            counter.update({int(s): n for s, n in data[name].items()})

    def rows(self) -> list[dict[str, float | int]]:
        """One row per second: offered and completed calls per second and that second's latency percentiles."""
        seconds = set(self.latency) | set(self.issued) | set(self.ok) | set(self.errors)
        out = []
        for second in range(max(seconds) + 1 if seconds else 0):
            stats = summary_ms(self.latency.get(second) or new_histogram())
            out.append(
                {
                    "second": second,
                    "issued": self.issued[second],
                    "ok": self.ok[second],
                    "errors": self.errors[second],
                    "p50_ms": stats["p50_ms"],
                    "p90_ms": stats["p90_ms"],
                    "p99_ms": stats["p99_ms"],
                    "max_ms": stats["max_ms"],
                }
            )
        return out
