"""The Faust app: topics, the session table, and the agents that feed batches of records to the SessionProcessor
(events) and to the CatalogProcessor (the compacted catalogue topic)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import faust
import grpc

from streamrec.config import DLQ_MAX_MESSAGE_BYTES, CoreSettings
from streamrec.features.session_store import partition_and_update
from streamrec.privacy import Pseudonymizer
from streamrec.redis import RedisError, connect
from streamrec.security import channel_credentials
from streamrec.stream import metrics, transport
from streamrec.stream.adapters import GrpcScorer, RedisStateStore, TopicDeadLetters
from streamrec.stream.aggregates import AggregateApplier
from streamrec.stream.batcher import SmartBatcher
from streamrec.stream.catalog import CatalogLimits, CatalogProcessor
from streamrec.stream.config import StreamSettings
from streamrec.stream.processor import Forward, Limits, RawRecord, SessionProcessor

log = logging.getLogger(__name__)
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
HEARTBEAT_S = 1.0
EVICT_EVERY_S = 60.0
T = TypeVar("T")


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

    def drop(self, key: str, partition: int) -> None:
        """Delete a key, writing its tombstone to the key's own changelog partition (compaction then frees it)."""
        self._next_partition = partition
        try:
            del self[key]
        finally:
            self._next_partition = None

    def evict_idle(self, older_than_ms: int) -> int:
        """Drop sessions not updated since `older_than_ms`: their Redis copy (24 h) still answers for them."""
        stale = []
        for key, value in list(self.data.items()):
            partition, updated_ms = partition_and_update(value)
            if value and updated_ms < older_than_ms:
                stale.append((key, partition))
        for key, partition in stale:
            self.drop(key, partition)
        return len(stale)

    def partition_for_key(self, key: Any) -> int | None:
        if self._next_partition is not None:
            return self._next_partition
        return super().partition_for_key(key)  # type: ignore[no-any-return]


class EventsTopicRouter:
    """The events topic as the processor's Router: its partition count as the broker has it, and forwarding.

    The count is read from the consumer's metadata at every batch (a dictionary look-up), so it follows the
    broker even if the topic grows; it is compared with `STREAMREC_TOPIC_PARTITIONS` and a difference is logged.
    Forwarded records keep their original value and timestamp, are keyed by the session and carry a
    `forwarded_from` header (`<partition>:<offset>`); `forward` returns once the broker acknowledged them all,
    so the batch that forwarded them may then be committed.
    """

    def __init__(self, app: faust.App, topic: Any, configured: int) -> None:
        self.app = app
        self.topic = topic
        self.configured = configured
        self._known = 0

    def partitions(self) -> int:
        actual = self.app.consumer.topic_partitions(self.topic.get_topic_name()) or 0
        if actual <= 0:  # no metadata yet (not seen after the first fetch): the settings are all we have
            return self.configured
        if actual != self._known:
            if actual != self.configured:
                log.warning(
                    "topic %s has %d partitions, STREAMREC_TOPIC_PARTITIONS says %d: sessions are routed by "
                    "the broker's count",
                    self.topic.get_topic_name(),
                    actual,
                    self.configured,
                )
            self._known = actual
        return actual

    async def forward(self, records: Sequence[Forward]) -> None:
        pending = []
        for f in records:  # sent in order: a session's forwarded records keep their order on its partition
            origin = f"{f.record.partition}:{f.record.offset}".encode()
            pending.append(
                await self.topic.send(
                    key=f.session_id.encode(),
                    value=f.record.value,
                    partition=f.partition,
                    timestamp=f.record.timestamp_s,
                    headers={"forwarded_from": origin},
                )
            )
        await asyncio.gather(*pending)


def tune_gc(gen0_threshold: int) -> None:
    """Move what start-up built out of the collector's sight, and collect young objects less often.

    A worker allocates and frees many short-lived containers per record (Faust's events and messages, our
    batches); with Python's default threshold of 700 it ran young collections many times a second, each
    scanning the events in flight, and every full collection walked Faust's, gRPC's and the modules'
    long-lived objects (the cost: docs/benchmarks.md, "a throttled machine"). Session state is held as bytes,
    which the collector does not track at all.
    """
    gc.collect()
    gc.freeze()
    if gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


def create_app(settings: StreamSettings) -> faust.App:
    core = settings.core
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    transport.fetch_max_wait_ms = settings.fetch_max_wait_ms
    transport.register()
    app = faust.App(
        f"{core.project}.{settings.app_id}",
        broker=[f"{transport.SCHEME}://{host}" for host in core.kafka_bootstrap.split(",")],
        store="memory://",
        topic_partitions=core.topic_partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        broker_credentials=broker_credentials(core),
        # changelog records are for recovery only and are flushed before every commit, so letting them batch
        # for a few ms costs no latency on the event path and saves many small produce requests
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_request_size=settings.producer_max_request_bytes,
        processing_guarantee=settings.processing_guarantee,
        datadir=str(settings.data_dir),
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_host="127.0.0.1",
    )
    events = app.topic(
        core.events_topic, key_serializer="raw", value_serializer="raw", partitions=core.topic_partitions
    )
    dead_letters = app.topic(core.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=1)
    table = SessionTable(
        app, name="sessions", default=None, partitions=core.topic_partitions, beacon=app.tables.beacon, value_type=bytes
    )  # SessionState JSON, as in Redis
    app.tables.add(table)
    scorer = GrpcScorer(
        core.scorer_address, settings.scorer_timeout_s, settings.scorer_token, scorer_channel_credentials(settings)
    )
    redis_client = connect(
        core.redis_url.get_secret_value(), replicated_writes=settings.redis_replicated_writes
    )  # one Redis, or a Redis Cluster (redis+cluster://)
    store = RedisStateStore(redis_client, core.project)
    aggregates = AggregateApplier(redis_client, core.project, core.events_topic)
    limits = Limits(
        settings.max_event_bytes, settings.max_future_skew_ms, settings.max_event_age_ms, settings.refresh_k
    )
    pseudonym = Pseudonymizer(core.user_id_key, core.user_id_key_id)
    dead_letter_sink = TopicDeadLetters(dead_letters, app.conf.producer_max_request_size)
    router = EventsTopicRouter(app, events, core.topic_partitions)
    processor = SessionProcessor(
        table, dead_letter_sink, scorer, aggregates, store, limits, pseudonym=pseudonym, router=router
    )
    catalog = app.topic(
        settings.catalog_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.catalog_partitions,
        config={"cleanup.policy": "compact"},  # the latest record of each product, and tombstones for a while
        internal=True,  # Faust creates it (with this config) before subscribing, if no one has yet
    )
    catalog_letters = app.topic(
        settings.catalog_dlq_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        config={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)},
    )
    catalog_limits = CatalogLimits(settings.catalog_max_record_bytes, settings.max_future_skew_ms)
    catalog_sink = TopicDeadLetters(catalog_letters, app.conf.producer_max_request_size)
    catalog_processor = CatalogProcessor(redis_client, core.project, catalog_sink, catalog_limits)

    async def crash(exc: BaseException) -> None:
        # not a Redis or network error (those are retried): a bug. Stop loudly; the records of this batch
        # are not acked, so a restarted worker gets them again.
        await app.crash(exc)

    @app.agent(events, name="sessions-agent")
    async def process(stream: Any) -> None:
        # acks are ours: an event is acked (and its offset may be committed) only after its batch is done
        stream.enable_acks = False
        tune_gc(settings.gc_gen0_threshold)  # everything long-lived exists by now

        async def handle(batch: list[Any]) -> None:
            timestamps = [event.message.timestamp for event in batch]  # seconds, the producer's CreateTime
            metrics.PICKUP.observe_ages(timestamps, time.time())
            trips_before = redis_client.round_trips
            await process_with_retry(processor, [_raw(event) for event in batch])
            metrics.REDIS_ROUND_TRIPS.inc(redis_client.round_trips - trips_before)
            metrics.FRESHNESS.observe_ages(timestamps, time.time())
            for event in batch:
                await stream.ack(event)

        def backlog(event: Any) -> int:
            """Records Kafka holds past this one in its partition, as of the last fetch: how far behind we are."""
            message = event.message
            highwater = app.consumer.highwater(message.tp)
            return 0 if highwater is None else highwater - message.offset - 1

        batcher: SmartBatcher[Any] = SmartBatcher(
            handle,
            settings.batch_max_events,
            settings.buffer_max_events,
            settings.batch_linger_ms / 1000,
            on_error=crash,
            linger_from=settings.batch_linger_from_events,
            backlog=backlog,
        )
        async for event in stream.events():
            await batcher.add(event)

    @app.agent(catalog, name="catalog-agent")
    async def apply_catalog(stream: Any) -> None:
        stream.enable_acks = False  # as for events: acked once their batch is applied
        await catalog_letters.maybe_declare()  # created with its settings before the first letter needs it

        async def handle(batch: list[Any]) -> None:
            outcome, _ = await with_retry(lambda: catalog_processor.process([_raw(e) for e in batch]), len(batch))
            metrics.record_catalog(outcome)
            if outcome.dead_letters:
                log.info("catalogue batch of %d: %s", len(batch), outcome)
            for event in batch:
                await stream.ack(event)

        batcher: SmartBatcher[Any] = SmartBatcher(
            handle, settings.batch_max_events, settings.buffer_max_events, on_error=crash
        )
        async for event in stream.events():
            await batcher.add(event)

    @app.timer(interval=min(EVICT_EVERY_S, settings.session_idle_s / 2))
    async def evict_idle_sessions() -> None:
        """Keep the worker's memory bounded: a session idle past the horizon leaves the table."""
        dropped = table.evict_idle(int(time.time() * 1000) - int(settings.session_idle_s * 1000))
        if dropped:
            log.info("evicted %d idle sessions from the table", dropped)

    worker_id = f"{socket.gethostname()}-{os.getpid()}"

    @app.timer(interval=HEARTBEAT_S)
    async def heartbeat() -> None:
        """Who owns which partition, for `streamrec status`, the tests and operators."""
        partitions = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == core.events_topic)
        metrics.ASSIGNED.set(len(partitions))
        value = json.dumps({"partitions": partitions, "pid": os.getpid(), "at_ms": int(time.time() * 1000)})
        try:
            key = f"{core.project}:workers:{worker_id}"
            await redis_client.execute([("SET", key, value, "EX", int(HEARTBEAT_S * 3))])
        except (RedisError, OSError) as exc:  # Redis down or loading: the batch retry reports it; skip a beat
            log.debug("heartbeat not written: %s", exc)

    @app.on_before_shutdown.connect  # type: ignore[arg-type, untyped-decorator]
    async def close_clients(sender: faust.App, **kwargs: Any) -> None:
        await scorer.close()
        await redis_client.aclose()

    return app


def scorer_channel_credentials(settings: StreamSettings) -> grpc.ChannelCredentials | None:
    if settings.scorer_tls_ca_file is None:
        return None
    return channel_credentials(settings.scorer_tls_ca_file, settings.scorer_tls_cert_file, settings.scorer_tls_key_file)


def broker_credentials(core: CoreSettings) -> Any:
    """Kafka SASL/SSL settings as Faust credentials (None for PLAINTEXT)."""
    protocol = core.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(core.kafka_ssl_ca_file) if core.kafka_ssl_ca_file else None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = core.kafka_sasl_password.get_secret_value() if core.kafka_sasl_password else ""
    mechanism = core.kafka_sasl_mechanism
    if mechanism == "PLAIN":
        return faust.SASLCredentials(
            username=core.kafka_sasl_username,
            password=password,
            ssl_context=context if protocol == "SASL_SSL" else None,
        )
    return faust.SASLCredentials(
        username=core.kafka_sasl_username,
        password=password,
        mechanism=mechanism,
        ssl_context=context if protocol == "SASL_SSL" else None,
    )


async def process_with_retry(processor: SessionProcessor, records: list[RawRecord]) -> None:
    """Process a batch of events, retried while Redis or the network is down (`with_retry`).

    A retried batch is safe: the table is written last, and the aggregate script skips applied offsets.
    """
    outcome, seconds = await with_retry(lambda: processor.process(records), len(records))
    metrics.record(outcome, len(records), seconds)
    if outcome.dead_letters or outcome.refresh_failed or outcome.duplicates:
        log.info("batch of %d: %s", len(records), outcome)


async def with_retry(process: Callable[[], Awaitable[T]], records: int) -> tuple[T, float]:
    """Run one batch, again after a Redis or network error until it succeeds: nothing is acked meanwhile, so the
    consumer waits (backpressure). Any other error is a bug and propagates. Returns the result and the seconds
    the successful try took."""
    delay = RETRY_FIRST_S
    while True:
        started = time.perf_counter()
        try:
            return await process(), time.perf_counter() - started
        except (RedisError, OSError) as exc:  # OSError covers ConnectionError
            metrics.RETRIES.inc()
            log.warning("batch of %d failed (%s); retrying in %.1fs", records, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


def _raw(event: Any) -> RawRecord:
    message = event.message
    return RawRecord(message.key, message.value, message.partition, message.offset, message.timestamp)


def run_worker(settings: StreamSettings) -> int:
    """Run the worker in the foreground until SIGTERM/Ctrl-C (Faust handles both)."""
    app = create_app(settings)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    from streamrec.logs import logging_config

    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, logging_config=logging_config())
    worker.execute_from_commandline()
    return 0
