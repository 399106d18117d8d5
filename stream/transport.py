"""A Faust Kafka transport that sets the consumer's fetch wait deliberately (Faust hardcodes 1500 ms).

Registered under the URL scheme `streamrec://`; everything else is Faust's own aiokafka transport.
"""

from __future__ import annotations

from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

from stream.config import DEFAULT_FETCH_MAX_WAIT_MS

SCHEME = "streamrec"
fetch_max_wait_ms = DEFAULT_FETCH_MAX_WAIT_MS  # set by stream.app from StreamSettings before the app starts


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by aiokafka when its fetcher starts
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register() -> None:
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
