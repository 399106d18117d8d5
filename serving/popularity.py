"""What to show a cold session: items trending in the stream, kept as an in-memory snapshot.

A background task reads the worker's trending sets (one per aggregate shard, features/aggregate_layout.py) from
Redis every `refresh_s`; Recommend never waits on it.
When Redis cannot be read, the last snapshot (at start: the model's training popularity) keeps serving, and
the outage shows in the `streamrec_scorer_redis_up` gauge and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from streamrec.features.aggregate_layout import merge_trending, shard_count, trending_commands
from streamrec.redis import RedisClient, RedisError
from streamrec.serving import metrics

log = logging.getLogger(__name__)
TRENDING_SIZE = 500


class PopularitySource:
    def __init__(self, client: RedisClient, project: str, initial: list[str], refresh_s: float = 1.0) -> None:
        self.client = client
        self.commands = trending_commands(project, shard_count(client.is_cluster), TRENDING_SIZE)
        self.initial = list(initial)
        self.items: list[str] = list(initial)
        self.from_stream = False  # False while the snapshot is still the model's training popularity
        self.refresh_s = refresh_s
        self.redis_ok = True
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        try:
            replies = await self.client.execute(self.commands)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.redis_ok:
                log.warning("trending items unavailable, serving the last snapshot: %s", exc)
            self.redis_ok = False
            metrics.REDIS_UP.set(0)
            return
        if not self.redis_ok:
            log.info("trending items readable again")
        self.redis_ok = True
        metrics.REDIS_UP.set(1)
        trending = merge_trending(replies, TRENDING_SIZE)
        if trending:
            # a young stream trends a handful of items: training popularity fills the rest of the list
            known = set(trending)
            self.items = trending + [item for item in self.initial if item not in known]
            self.from_stream = True

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="trending-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
