"""The Faust app: topics, the session table and the agent that feeds batches of records to the SessionProcessor."""

from __future__ import annotations

import logging
from typing import Any

import faust
import redis.asyncio as aioredis

from stream import transport
from stream.adapters import GrpcScorer, RedisStateWriter, TopicDeadLetters
from stream.aggregates import AggregateApplier
from stream.config import StreamSettings
from stream.processor import Limits, RawRecord, SessionProcessor

log = logging.getLogger(__name__)


class SessionTable(faust.Table):  # type: ignore[misc]
    """A table whose changelog partition is the partition of the record that changed the key.

    Faust takes the partition from the *current* event, which inside a batch (`take_events`) is the last one;
    naming it per write keeps every key's changelog on its session's partition, whatever the batch holds.
    """

    _next_partition: int | None = None

    def put(self, key: str, value: Any, partition: int) -> None:
        self._next_partition = partition
        try:
            self[key] = value
        finally:
            self._next_partition = None

    def partition_for_key(self, key: Any) -> int | None:
        if self._next_partition is not None:
            return self._next_partition
        return super().partition_for_key(key)  # type: ignore[no-any-return]


def create_app(settings: StreamSettings) -> faust.App:
    core = settings.core
    transport.fetch_max_wait_ms = settings.fetch_max_wait_ms
    transport.register()
    app = faust.App(
        f"{core.project}.{settings.app_id}",
        broker=[f"{transport.SCHEME}://{host}" for host in core.kafka_bootstrap.split(",")],
        store="memory://",
        topic_partitions=core.topic_partitions,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.data_dir),
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_host="127.0.0.1",
    )
    events = app.topic(
        core.events_topic, key_serializer="raw", value_serializer="raw", partitions=core.topic_partitions
    )
    dead_letters = app.topic(core.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=1)
    table = SessionTable(app, name="sessions", default=None, partitions=core.topic_partitions, beacon=app.tables.beacon)
    app.tables.add(table)
    scorer = GrpcScorer(core.scorer_address, settings.scorer_timeout_s)
    redis_client = aioredis.from_url(core.redis_url)
    writer = RedisStateWriter(redis_client, core.project)
    aggregates = AggregateApplier(redis_client, core.project, core.events_topic)
    limits = Limits(
        settings.max_event_bytes, settings.max_future_skew_ms, settings.max_event_age_ms, settings.refresh_k
    )
    processor = SessionProcessor(table, TopicDeadLetters(dead_letters), scorer, aggregates, writer, limits)

    @app.agent(events, name="sessions-agent")
    async def process(stream: Any) -> None:  # faust's StreamT stub lacks take_events
        async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within_s):
            records = [_raw(event) for event in batch]
            outcome = await processor.process(records)
            if outcome.dead_letters or outcome.refresh_failed:
                log.info("batch of %d: %s", len(records), outcome)

    @app.on_before_shutdown.connect  # type: ignore[arg-type, untyped-decorator]
    async def close_clients(sender: faust.App, **kwargs: Any) -> None:
        await scorer.close()
        await redis_client.aclose()

    return app


def _raw(event: Any) -> RawRecord:
    message = event.message
    return RawRecord(message.key, message.value, message.partition, message.offset)


def run_worker(settings: StreamSettings) -> int:
    """Run the worker in the foreground until SIGTERM/Ctrl-C (Faust handles both)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
