"""Prometheus metrics of the stream worker (names shared with the dashboards in docs/observability.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from stream.processor import BatchOutcome

REGISTRY = CollectorRegistry()
EVENTS = Counter("streamrec_worker_events_total", "Events by type and outcome", ["type", "outcome"],
                 registry=REGISTRY)  # fmt: skip
DEAD_LETTERS = Counter("streamrec_worker_dead_letters_total", "Dead-lettered records by reason", ["reason"],
                       registry=REGISTRY)  # fmt: skip
BATCH_SIZE = Histogram("streamrec_worker_batch_events", "Records per processed batch", registry=REGISTRY,
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))  # fmt: skip
BATCH_SECONDS = Histogram("streamrec_worker_batch_seconds", "Time to process one batch", registry=REGISTRY,
                          buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))  # fmt: skip
REFRESHES = Counter("streamrec_worker_refreshes_total", "Refreshed lists by outcome", ["outcome"], registry=REGISTRY)
RETRIES = Counter("streamrec_worker_batch_retries_total", "Batches retried after a Redis or network error",
                  registry=REGISTRY)  # fmt: skip
ASSIGNED = Gauge("streamrec_worker_assigned_partitions", "Partitions of the events topic assigned here",
                 registry=REGISTRY)  # fmt: skip
_AGE_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
# both from the record's Kafka timestamp (the producer's clock): across machines, clock skew is part of it
PICKUP = Histogram("streamrec_worker_pickup_seconds", "Record timestamp to the start of the batch handling it",
                   registry=REGISTRY, buckets=_AGE_BUCKETS)  # fmt: skip
FRESHNESS = Histogram("streamrec_worker_freshness_seconds",
                      "Record timestamp to its batch's state, features and refreshed lists written",
                      registry=REGISTRY, buckets=_AGE_BUCKETS)  # fmt: skip
LATE = Counter("streamrec_worker_late_events_total", "Events older than the 24 h window (totals only)",
               registry=REGISTRY)  # fmt: skip


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


def observe_ages(histogram: Histogram, timestamps_s: list[float], now_s: float) -> None:
    for ts in timestamps_s:
        histogram.observe(max(0.0, now_s - ts))


def serve(port: int) -> None:
    start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
