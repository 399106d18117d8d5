"""Settings of the stream worker (env prefix STREAMREC_STREAM_), with the shared core settings inside."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrec.config import DLQ_MAX_MESSAGE_BYTES, CoreSettings

# Freshness depends on this number, so we set it on purpose rather than take Faust's hardcoded 1500 ms or
# aiokafka's 500 ms. Apache Kafka answers a waiting fetch as soon as data arrives, so the wait only paces idle
# polling; shorter waits cost broker CPU (the figures for each value: docs/benchmarks.md, "Freshness").
DEFAULT_FETCH_MAX_WAIT_MS = 20
CATALOG_TOPIC = "streamrec.catalog"
CATALOG_DLQ_TOPIC = "streamrec.catalog.dlq"


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMREC_STREAM_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    app_id: str = Field("streamrec-worker", description="Faust app id = consumer group id (prefixed by project)")
    fetch_max_wait_ms: int = Field(DEFAULT_FETCH_MAX_WAIT_MS, ge=0, le=10_000)
    session_timeout_s: float = Field(10.0, gt=0, description="Kafka consumer session timeout")
    heartbeat_interval_s: float = Field(1.0, gt=0)
    batch_max_events: int = Field(1000, ge=1, description="most events handled in one batch")
    buffer_max_events: int = Field(5000, ge=1, description="events buffered while a batch runs; then backpressure")
    batch_linger_ms: float = Field(
        25.0, ge=0, le=100, description="when behind, wait up to this long to fill a batch (docs/streaming.md)"
    )
    batch_linger_from_events: int = Field(
        100, ge=2, description="linger only when this many records wait in Kafka behind the buffer"
    )
    gc_gen0_threshold: int = Field(
        10_000, ge=0, description="allocations between young garbage collections (0: Python's default, 700)"
    )
    session_idle_s: float = Field(1800.0, gt=0, description="sessions idle this long leave the worker's memory")
    refresh_k: int = Field(20, ge=1, le=1000, description="length of the refreshed recommendation list")
    producer_linger_ms: int = Field(10, ge=0, description="batching of changelog and dead-letter records")
    # a dead letter keeps every byte of a record up to this less 16 KiB; the dead-letter topic takes as much
    producer_max_request_bytes: int = Field(DLQ_MAX_MESSAGE_BYTES, ge=65_536, description="largest record sent")
    scorer_timeout_s: float = Field(1.0, gt=0)
    scorer_token: SecretStr | None = Field(None, description="bearer token with the 'score' scope")
    scorer_tls_ca_file: Path | None = Field(None, description="CA of the scorer's certificate: turns TLS on")
    scorer_tls_cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    scorer_tls_key_file: Path | None = None
    max_event_bytes: int = Field(16_384, ge=64, description="larger payloads are dead-lettered as oversize")
    max_future_skew_ms: int = Field(10 * 60_000, ge=0, description="events further in the future are rejected")
    max_event_age_ms: int = Field(400 * 24 * 3600_000, ge=0, description="events older than this are rejected")
    catalog_topic: str = Field(CATALOG_TOPIC, description="catalogue records (compacted, key = product id)")
    catalog_dlq_topic: str = Field(CATALOG_DLQ_TOPIC, description="catalogue records that failed validation")
    catalog_partitions: int = Field(
        1, ge=1, description="partitions of the catalogue topic where the worker or `catalog publish` creates it"
    )
    catalog_max_record_bytes: int = Field(
        65_536, ge=1024, description="larger catalogue records are dead-lettered as oversize"
    )
    # at-least-once plus the event-id and offset dedupe is the default; exactly_once (Kafka transactions) covers
    # the changelog and the offsets but not the Redis writes, so the dedupe is needed either way (docs/streaming.md)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    replication_factor: int = Field(1, ge=1, description="replicas of the topics the worker creates (3 in production)")
    data_dir: Path = Field(Path(".streamrec/worker"), description="Faust's local data directory")
    web_port: int = Field(0, ge=0, description="Faust web server port; 0 disables it")
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port; 0 disables it")
    metrics_host: str = Field("127.0.0.1", description="interface of /metrics (0.0.0.0: every one, in a container)")
    redis_replicated_writes: int = Field(
        1, ge=0, description="on a Redis Cluster, writes wait for this many replicas of their primary (0: none)"
    )
    log_level: str = "info"
