"""What feeds the live page: the clients, the tail reader, and the loops that keep its figures current.

Loops (all in the web server's event loop, each one second or so apart):
  * tracker  - follows sampled events until their refresh is visible (freshness.py)
  * status   - `collect` (the checks of `streamrec status`) on an executor thread, every STATUS_EVERY_S
  * ticker   - scrapes worker and scorer /metrics, then adds one point to the figures' series
  * probe    - times Recommend for sessions seen on the tail (read-only: it changes nothing in the stack)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

import aiohttp
import grpc

from streamrec.observe import scrape
from streamrec.observe.checks import StackStatus, collect
from streamrec.observe.config import ObserveSettings, Targets
from streamrec.observe.freshness import FreshnessTracker
from streamrec.observe.live import Inputs, LiveFigures
from streamrec.observe.report import to_json
from streamrec.observe.storefront import Storefront
from streamrec.observe.tail import TailReader
from streamrec.redis import RedisError, connect

log = logging.getLogger(__name__)
STATUS_EVERY_S = 3.0
TICK_S = 1.0
SCRAPE_TIMEOUT_S = 1.0
WORKER_EVENTS = ("streamrec_worker_events_total", "streamrec_worker_dead_letters_total")


class Feeds:
    def __init__(self, targets: Targets, settings: ObserveSettings) -> None:
        self.targets = targets
        self.settings = settings
        self.figures = LiveFigures(settings.window_s)
        self.recent_sessions: deque[str] = deque(maxlen=200)
        self.status: StackStatus | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = contextlib.AsyncExitStack()  # what `start` opened, closed by `stop` in reverse order

    async def start(self) -> None:
        """Open the clients and start the loops; call in the event loop that will serve the page."""
        loop, opened = asyncio.get_running_loop(), self._opened
        self.redis = connect(self.targets.redis, connect_timeout_s=2)
        opened.push_async_callback(self.redis.aclose)
        # the page's own Recommend calls go to the first scorer named; status checks every one
        self.channel = self.targets.credentials.scorers_aio_channel(self.targets.grpc)
        opened.push_async_callback(self.channel.close)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S))
        opened.push_async_callback(self.http.close)
        self.tracker = FreshnessTracker(
            self.redis,
            self.targets.project,
            self.settings.freshness_timeout_s,
            lambda ms: self.figures.record_freshness(ms, time.monotonic()),
        )
        self.storefront = Storefront(
            self.targets, self.redis, self.channel, self.tracker, self.figures, self.settings.freshness_timeout_s
        )
        opened.callback(self.storefront.close)

        def sampled(session_id: str, event_id: str, created_ms: float, offset: int) -> None:
            loop.call_soon_threadsafe(self._follow, session_id, event_id, created_ms, offset)

        client = self.targets.credentials.kafka_config(**{"bootstrap.servers": self.targets.kafka})
        self.tail = TailReader(client, self.targets.topic, self.settings.freshness_samples_per_s, sampled).start()
        opened.push_async_callback(loop.run_in_executor, None, self.tail.stop)
        for work in (self._tracker_loop(), self._status_loop(), self._ticker(), self._probe_loop()):
            self._spawn(work)

    async def stop(self) -> None:
        """Stop the loops, then close whatever `start` got to open (it may have failed half way)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._opened.aclose()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    def _follow(self, session_id: str, event_id: str, created_ms: float, offset: int) -> None:
        self.recent_sessions.append(session_id)
        self.tracker.offer(session_id, event_id, created_ms, offset)

    async def status_json(self) -> dict[str, Any]:
        if self.status is None:
            await self._refresh_status()
        assert self.status is not None
        return {**to_json(self.status), "tail_error": self.tail.error}

    async def _refresh_status(self) -> None:
        timeout = self.settings.check_timeout_s
        self.status = await asyncio.get_running_loop().run_in_executor(None, collect, self.targets, timeout)

    async def _tracker_loop(self) -> None:
        while True:  # returns only by cancellation; a Redis outage pauses it
            await _logged(self.tracker.run(), "freshness tracker")
            await asyncio.sleep(0.5)

    async def _status_loop(self) -> None:
        while True:
            await _logged(self._refresh_status(), "status")
            await asyncio.sleep(STATUS_EVERY_S)

    async def _ticker(self) -> None:
        next_at = time.monotonic()
        while True:
            await _logged(self._tick(), "tick")
            next_at += TICK_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _tick(self) -> None:
        inputs = Inputs(produced_total=self.tail.count)
        workers = [await self._scrape(e) for e in self.targets.worker_metrics]
        if workers and all(w is not None for w in workers):
            inputs.processed_total = sum(scrape.total(w, name) for w in workers if w for name in WORKER_EVENTS)
            inputs.processed_source = "metrics"
        elif self.status is not None and self.status.broker.partitions:
            # no worker /metrics: committed offsets advance as batches finish (every few seconds in Faust)
            inputs.processed_total = sum(p.committed or 0 for p in self.status.broker.partitions)
            inputs.processed_source = "offsets"
        if self.status is not None and self.status.broker.partitions:
            inputs.lag = self.status.broker.total_lag
        scorers = [await self._scrape(e) for e in self.targets.scorer_metrics]
        if scorers and scorers[0] is not None:
            inputs.server_buckets = scrape.buckets(scorers[0], "streamrec_scorer_request_seconds", rpc="Recommend")
        self.figures.tick(inputs, time.monotonic())

    async def _scrape(self, endpoint: str) -> list[scrape.Sample] | None:
        try:
            async with self.http.get(f"http://{endpoint}/metrics") as reply:
                return scrape.parse(await reply.text())
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _probe_loop(self) -> None:
        rate = self.settings.recommend_probes_per_s
        if rate <= 0:
            return
        while True:
            await asyncio.sleep(1.0 / rate)
            session = random.choice(self.recent_sessions) if self.recent_sessions else "__observe-probe__"
            await _logged(self.storefront.recommend(session, 20), "Recommend probe")


async def _logged(work: Coroutine[Any, Any, Any], what: str) -> None:
    """One round of a loop; a dependency that is down is reported by status, so here it is only logged."""
    try:
        await work
    except (grpc.aio.AioRpcError, OSError, RedisError) as exc:
        log.debug("%s failed: %s", what, exc)
    except Exception:  # a bug must not silently end a loop the page depends on: log it with its trace
        log.exception("%s failed", what)
        await asyncio.sleep(1)
