"""The worker's age histograms expose exactly what prometheus_client's own Histogram would for the same values."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamrec.stream import metrics
from streamrec.stream.metrics import AgeHistogram
from streamrec.stream.transport import observe_fetched

BUCKETS = (0.005, 0.01, 0.05, 1.0)


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(registry).decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def test_age_histogram_matches_prometheus_histogram() -> None:
    now = 1_000.0
    timestamps = [now - age for age in (0.0, 0.004, 0.005, 0.0100001, 0.01, 0.3, 1.0, 7.5)] + [now + 2.0]  # a future
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    AgeHistogram("age_seconds", "ages", BUCKETS, ours).observe_ages(timestamps, now)
    reference = Histogram("age_seconds", "ages", buckets=BUCKETS, registry=theirs)
    for ts in timestamps:
        reference.observe(max(0.0, now - ts))  # a timestamp ahead of the clock counts as age 0
    assert samples(ours) == samples(theirs)
    assert ("age_seconds_count", {}, 9.0) in samples(ours)


def test_fetched_records_are_aged_from_their_millisecond_timestamps() -> None:
    """The consumer thread's hook: every fetched record, from every partition, counted once at its age."""
    before = list(metrics.FETCHED.counts)
    now = 1_000.0
    fetched = {"tp0": [FakeRecord(999_997.0), FakeRecord(999_955.0)], "tp1": [FakeRecord(1_000_500.0)], "tp2": []}
    observe_fetched(fetched, now)  # 3 ms, 45 ms, and one from a producer clock ahead of ours (age 0)
    added = [after - old for after, old in zip(metrics.FETCHED.counts, before, strict=True)]
    bounds = metrics.FETCHED.bounds
    assert sum(added) == 3
    assert added[bisect_left(bounds, 0.0)] == 1
    assert added[bisect_left(bounds, 0.003)] == 1
    assert added[bisect_left(bounds, 0.045)] == 1


@dataclass(frozen=True)
class FakeRecord:
    timestamp: float  # ms, as aiokafka's ConsumerRecord
