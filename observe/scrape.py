"""Read Prometheus /metrics of our worker and scorer: fetch, sum counters, and quantiles from histogram deltas."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def fetch_text(endpoint: str, timeout_s: float = 2.0) -> str:
    """GET http://{endpoint}/metrics; raises OSError (URLError is one) when the endpoint does not answer."""
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=timeout_s) as reply:
        return str(reply.read().decode())


def parse(text: str) -> list[Sample]:
    return [
        Sample(s.name, tuple(sorted(s.labels.items())), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """Sum of every sample called `name` whose labels include `labels` (several workers simply add up)."""
    wanted = set(labels.items())
    return sum(s.value for s in samples if s.name == name and wanted <= set(s.labels))


def buckets(samples: Iterable[Sample], histogram: str, **labels: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram by upper bound (`le`), summed over matching series."""
    wanted = set(labels.items())
    out: dict[float, float] = {}
    for s in samples:
        if s.name == f"{histogram}_bucket" and wanted <= set(s.labels):
            bound = float(dict(s.labels)["le"])
            out[bound] = out.get(bound, 0.0) + s.value
    return out


def bucket_delta(newer: dict[float, float], older: dict[float, float]) -> dict[float, float]:
    """Observations between two scrapes; a restarted process (counters went down) counts from zero."""
    if any(newer.get(b, 0.0) < v for b, v in older.items()):
        return dict(newer)
    return {b: v - older.get(b, 0.0) for b, v in newer.items()}


def quantile(q: float, cumulative: dict[float, float]) -> float:
    """PromQL's histogram_quantile: linear interpolation inside the bucket the rank falls in; NaN when empty.

    The answer is only as fine as the buckets (serving/metrics.py chose them around the 1 ms and 3 ms targets).
    """
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return math.nan
    count = cumulative[bounds[-1]]
    rank = q * count
    lower, below = 0.0, 0.0
    for bound in bounds:
        upto = cumulative[bound]
        if upto >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bucket: its bound is the best we know
            inside = upto - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, upto
    return lower
