"""In-memory snapshot of the stream's item features for the ranker's hot path, refreshed from Redis in the background.

The stream worker writes one `item_features` row per item it touches (features/schema.py), each as of that item's
last event. A background task reads, every `refresh_s`, the rows of the items that matter (the trending sets of
features/aggregate_layout.py, top `trending_n`, plus the items that recently appeared among candidates) and the
stream's event-time watermark, and turns them into one float32 matrix with `item_block`
(features/ranker_inputs.py, which training uses offline too). A request only gathers
rows from the current snapshot: it never waits on Redis, and an item not (yet) in the snapshot reads as an
item the stream knows nothing about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamrec.features.aggregate_layout import (
    latest_watermark,
    merge_trending,
    shard_count,
    trending_commands,
    watermark_commands,
)
from streamrec.features.online import FeatureLayout
from streamrec.features.ranker_inputs import UNKNOWN_ROW, item_block, rows_to_raw
from streamrec.redis import RedisClient, RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One consistent view: item -> row of `block` (row 0 is the unknown item), and the time it is as of."""

    index: dict[str, int]
    block: np.ndarray  # [1 + items, len(ITEM_BLOCK)] float32
    now_ms: int

    @classmethod
    def empty(cls) -> Snapshot:
        return cls({}, UNKNOWN_ROW[None, :].copy(), 0)

    @classmethod
    def build(cls, items: Sequence[str], rows: Sequence[dict[str, Any] | None], watermark_ms: int) -> Snapshot:
        raw, ts, known = rows_to_raw(rows)
        # the watermark is the stream's "now" in event time; without it, the newest row is the best guess
        now_ms = watermark_ms or int(ts.max(initial=0))
        block = np.vstack([UNKNOWN_ROW[None, :], item_block(raw, ts, known, now_ms)])
        return cls({item: i + 1 for i, item in enumerate(items)}, block, now_ms)


class ItemFeatureCache:
    """Item feature rows for the ranker, read from Redis off the request path.

    `gather(items)` is what a request calls: a list lookup and one fancy index, no I/O. It also notes the items
    so the next refresh reads them: a candidate missing from the snapshot counts as unknown once, then is known.
    """

    def __init__(
        self,
        client: RedisClient | None,
        project: str,
        refresh_s: float = 1.0,
        trending_n: int = 2000,
        recent_n: int = 20000,
        recent_refreshes: int = 300,
    ) -> None:
        self.client = client
        self.layout = FeatureLayout(project)
        shards = shard_count(client is not None and client.is_cluster)  # None: a cache that is never refreshed
        self.head_commands = [*watermark_commands(project, shards), *trending_commands(project, shards, trending_n)]
        self.shards = shards
        self.refresh_s = refresh_s
        self.trending_n = trending_n
        self.recent_n = recent_n  # at most this many candidate items are kept beyond the trending set
        self.recent_refreshes = recent_refreshes  # ... and only those seen within this many refreshes
        self.snapshot = Snapshot.empty()
        self.redis_ok = True
        self._recent: dict[str, int] = {}  # item -> refresh tick when it was last a candidate
        self._tick = 0
        self._task: asyncio.Task[None] | None = None
        self.active = False  # set while a ranker is in service: without one, nothing reads this cache

    def gather(self, items: Sequence[str]) -> np.ndarray:
        """ITEM_BLOCK rows [len(items), 11] of the current snapshot; unknown items get UNKNOWN_ROW."""
        snap = self.snapshot  # one reference: a refresh swapping it mid-call cannot mix two snapshots
        get = snap.index.get
        rows = [get(item, 0) for item in items]
        self._recent.update(dict.fromkeys(items, self._tick))
        return snap.block[rows]

    def wanted(self) -> list[str]:
        """Recent candidate items to read besides the trending set, newest first; forgets the stale ones."""
        horizon = self._tick - self.recent_refreshes
        recent = sorted(((tick, item) for item, tick in self._recent.items() if tick >= horizon), reverse=True)
        keep = [item for _, item in recent[: self.recent_n]]
        self._recent = {item: tick for tick, item in recent[: self.recent_n]}
        return keep

    async def refresh(self) -> None:
        """Read the watermark, the trending set and the wanted items' rows, then swap the snapshot."""
        if self.client is None:
            return
        self._tick += 1
        try:
            head = await self.client.execute(self.head_commands)
            watermark = latest_watermark(head[: self.shards])
            members = merge_trending(head[self.shards :], self.trending_n)
            items = list(dict.fromkeys([*members, *self.wanted()]))
            rows = await self.layout.read_rows(self.client, "item_features", items, with_ts=True)
        except (RedisError, OSError) as exc:
            if self.redis_ok:
                log.warning("item features unavailable, ranking with the last snapshot: %s", exc)
            self.redis_ok = False
            return
        if not self.redis_ok:
            log.info("item features readable again")
        self.redis_ok = True
        self.snapshot = Snapshot.build(items, rows, watermark)

    async def _run(self) -> None:
        while True:
            if self.active:
                await self.refresh()
            await asyncio.sleep(self.refresh_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="item-features-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
