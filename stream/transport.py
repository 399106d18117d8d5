"""A Faust Kafka transport that sets the consumer's fetch wait deliberately and times what the broker delivers.

Faust hardcodes a 1500 ms fetch wait; ours comes from StreamSettings. Each fetched record's age (its Kafka
timestamp to the moment the consumer thread hands it to Faust) goes to `streamrec_worker_fetched_seconds`,
which separates what the broker takes from what the worker adds (pickup and freshness histograms).
Registered under the URL scheme `streamrec://`; everything else is Faust's own aiokafka transport.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

from streamrec.stream import metrics
from streamrec.stream.config import DEFAULT_FETCH_MAX_WAIT_MS

SCHEME = "streamrec"
fetch_max_wait_ms = DEFAULT_FETCH_MAX_WAIT_MS  # set by stream.app from StreamSettings before the app starts


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by aiokafka when its fetcher starts
        return consumer

    async def _fetch_records(self, *args: Any, **kwargs: Any) -> Any:
        records = await super()._fetch_records(*args, **kwargs)
        if records:
            observe_fetched(records, time.time())
        return records


def observe_fetched(records: Mapping[Any, list[Any]], now_s: float) -> None:
    """Ages of fetched aiokafka records (timestamps in ms) into the fetched-age histogram."""
    for batch in records.values():
        metrics.FETCHED.observe_ages((record.timestamp / 1000 for record in batch), now_s)


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register() -> None:
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
