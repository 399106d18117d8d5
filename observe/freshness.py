"""Freshness of real traffic: follow an event until a refreshed list that includes it is visible in Redis.

The live page measures what users get, not a synthetic probe: events come from the tail of the events topic
(their Kafka CreateTime is the start) and from the storefront's own clicks (the time before producing is the
start). A pending event is done when the session's `{project}:recs:{sid}` names it, or names a later record of
the same partition (a list caused by a later event already includes this one). It is visible at the moment we
first see it; when it was already there at our first look (the worker beat our tail consumer), the worker's own
`refreshed_ms` stamp is taken instead, so a slow observer does not inflate the figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamrec.features.session_store import Recommendations, recs_key

POLL_S = 0.002  # pending events are few (sampled) and one MGET covers them all
MAX_PENDING = 200
Future = asyncio.Future[float]  # resolves to a freshness in ms


@dataclass
class Pending:
    session_id: str
    event_id: str
    sent_ms: float
    offset: int | None  # the record's offset when known (tailed events): lets a later list count
    looked: bool = False
    done: asyncio.Future[float] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def visible(recs: Recommendations, pending: Pending) -> bool:
    if recs.event_id == pending.event_id:
        return True
    return pending.offset is not None and recs.offset > pending.offset


def latency_ms(recs: Recommendations, pending: Pending, now_ms: float) -> float:
    seen_ms = float(recs.refreshed_ms) if not pending.looked else now_ms
    return max(0.0, seen_ms - pending.sent_ms)


class FreshnessTracker:
    """Runs in the web server's event loop; `expect` is called there, `offer` from the tail thread."""

    def __init__(self, client: Any, project: str, timeout_s: float, record: Callable[[float | None], None]) -> None:
        self.client = client  # streamrec.redis.FastRedis
        self.project = project
        self.timeout_s = timeout_s
        self.record = record  # called with a latency in ms, or None for a sample never seen
        self.pending: dict[str, Pending] = {}  # by event id
        self._wake = asyncio.Event()

    def expect(self, session_id: str, event_id: str, sent_ms: float, offset: int | None = None) -> Future:
        """Follow `event_id`; the future resolves to its freshness in ms (or raises TimeoutError)."""
        known = self.pending.get(event_id)
        if known is not None:
            return known.done
        pending = Pending(session_id, event_id, sent_ms, offset)
        if len(self.pending) < MAX_PENDING:
            self.pending[event_id] = pending
            self._wake.set()
        else:
            pending.done.set_exception(TimeoutError("too many events being followed"))
        return pending.done

    def offer(self, session_id: str, event_id: str, sent_ms: float, offset: int) -> None:
        """A sampled tailed event (from any thread via loop.call_soon_threadsafe); its result is recorded only."""
        self.expect(session_id, event_id, sent_ms, offset).add_done_callback(_consume)

    async def run(self) -> None:
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
            await self._check_once()
            await asyncio.sleep(POLL_S)

    async def _check_once(self) -> None:
        batch = list(self.pending.values())
        raws = await self.client.mget(*[recs_key(self.project, p.session_id) for p in batch])
        now_ms = time.time() * 1000
        for pending, raw in zip(batch, raws, strict=True):
            recs = Recommendations.from_json(raw) if raw else None
            if recs is not None and visible(recs, pending):
                self._finish(pending, latency_ms(recs, pending, now_ms))
            elif now_ms - pending.sent_ms > self.timeout_s * 1000:
                self._finish(pending, None)
            else:
                pending.looked = True

    def _finish(self, pending: Pending, latency: float | None) -> None:
        self.pending.pop(pending.event_id, None)
        self.record(latency)
        if pending.done.done():
            return
        if latency is None:
            pending.done.set_exception(TimeoutError(f"no refresh for {pending.event_id} in {self.timeout_s:.0f}s"))
        else:
            pending.done.set_result(latency)


def _consume(future: asyncio.Future[float]) -> None:
    """Retrieve a sample's outcome so asyncio does not log 'exception never retrieved' for a missing one."""
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        future.result()
