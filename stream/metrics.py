"""Prometheus metrics of the stream worker (names shared with the dashboards in docs/observability.md)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from streamrec.metrics_endpoint import serve_metrics
from streamrec.stream.catalog import CatalogOutcome
from streamrec.stream.processor import BatchOutcome

REGISTRY = CollectorRegistry()
EVENTS = Counter("streamrec_worker_events_total", "Events by type and outcome", ["type", "outcome"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "streamrec_worker_dead_letters_total", "Dead-lettered records by reason", ["reason"], registry=REGISTRY
)
BATCH_SIZE = Histogram(
    "streamrec_worker_batch_events",
    "Records per processed batch",
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
BATCH_SECONDS = Histogram(
    "streamrec_worker_batch_seconds",
    "Time to process one batch",
    registry=REGISTRY,
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
REDIS_ROUND_TRIPS = Counter(
    "streamrec_worker_redis_round_trips_total",
    "Pipelines the worker sent to Redis (one per node on a Redis Cluster): batching makes this far below events",
    registry=REGISTRY,
)
REFRESHES = Counter("streamrec_worker_refreshes_total", "Refreshed lists by outcome", ["outcome"], registry=REGISTRY)
RETRIES = Counter(
    "streamrec_worker_batch_retries_total", "Batches retried after a Redis or network error", registry=REGISTRY
)
ASSIGNED = Gauge(
    "streamrec_worker_assigned_partitions", "Partitions of the events topic assigned here", registry=REGISTRY
)
# fine around the freshness target (50 ms p99): quantiles are interpolated within a bucket
_AGE_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30, 60)
# all from the record's Kafka timestamp (the producer's clock): across machines, clock skew is part of it


class AgeHistogram:
    """A Prometheus histogram of record ages, observed a batch at a time: a bisect per record, no lock.

    prometheus_client's Histogram takes a lock and walks the buckets per value, a visible share of the
    worker's CPU at two per record (docs/benchmarks.md). Each has one writer (the event loop; for FETCHED,
    Faust's consumer thread); a scrape reads the counts as they stand.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        registry.register(self)

    def observe_ages(self, timestamps_s: Iterable[float], now_s: float) -> None:
        counts, bounds, total = self.counts, self.bounds, 0.0
        for ts in timestamps_s:
            age = now_s - ts if now_s > ts else 0.0
            counts[bisect_left(bounds, age)] += 1  # Prometheus buckets hold values <= their bound
            total += age
        self.sum += total

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = list(accumulate(self.counts))
        labels = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=list(zip(labels, cumulative, strict=True)), sum_value=self.sum
        )


FETCHED = AgeHistogram(
    "streamrec_worker_fetched_seconds",
    "Record timestamp to the worker's Kafka consumer receiving it: producer batching and the broker",
    _AGE_BUCKETS,
    REGISTRY,
)
PICKUP = AgeHistogram(
    "streamrec_worker_pickup_seconds", "Record timestamp to the start of the batch handling it", _AGE_BUCKETS, REGISTRY
)
FRESHNESS = AgeHistogram(
    "streamrec_worker_freshness_seconds",
    "Record timestamp to its batch's state, features and refreshed lists written",
    _AGE_BUCKETS,
    REGISTRY,
)
FORWARDED = Counter(
    "streamrec_worker_events_forwarded_total",
    "Events that arrived off their session's partition and were sent on to it (applied there)",
    registry=REGISTRY,
)
LATE = Counter(
    "streamrec_worker_late_events_total", "Events older than the 24 h window (totals only)", registry=REGISTRY
)

CATALOG_RECORDS = Counter(
    "streamrec_worker_catalog_records_total",
    "Catalogue records by outcome: applied, ignored (not newer than the stored one), dead_lettered",
    ["outcome"],
    registry=REGISTRY,
)
CATALOG_DEAD_LETTERS = Counter(
    "streamrec_worker_catalog_dead_letters_total",
    "Catalogue records sent to the catalogue's dead-letter topic, by reason",
    ["reason"],
    registry=REGISTRY,
)


def record(outcome: BatchOutcome, records: int, seconds: float) -> None:
    BATCH_SIZE.observe(records)
    BATCH_SECONDS.observe(seconds)
    for kind, n in outcome.by_type.items():
        EVENTS.labels(kind, "processed").inc(n)
    if outcome.duplicates:
        EVENTS.labels("any", "duplicate").inc(outcome.duplicates)
    if outcome.redelivered:
        EVENTS.labels("any", "redelivered").inc(outcome.redelivered)
    for reason, n in outcome.dead_letters.items():
        DEAD_LETTERS.labels(reason).inc(n)
    if outcome.refreshed:
        REFRESHES.labels("ok").inc(outcome.refreshed)
    if outcome.refresh_failed:
        REFRESHES.labels("failed").inc(outcome.refresh_failed)
    if outcome.late:
        LATE.inc(outcome.late)
    if outcome.forwarded:
        FORWARDED.inc(outcome.forwarded)


def record_catalog(outcome: CatalogOutcome) -> None:
    if outcome.applied:
        CATALOG_RECORDS.labels("applied").inc(outcome.applied)
    if outcome.ignored:
        CATALOG_RECORDS.labels("ignored").inc(outcome.ignored)
    for reason, n in outcome.dead_letters.items():
        CATALOG_RECORDS.labels("dead_lettered").inc(n)
        CATALOG_DEAD_LETTERS.labels(reason).inc(n)


def serve(port: int, host: str = "127.0.0.1") -> None:
    serve_metrics(REGISTRY, port, host)
