"""Smart batching: items pile up while the previous batch is being processed; one batch in flight at a time.

At low load every item is handled at once (a batch of one, no waiting); under load batches grow by
themselves to what arrived during the last batch, so the fixed cost per batch (round trips to Redis and the
scorer) is spread over more items. A worker that is falling behind also *lingers*: before a batch it waits up
to `linger_s` for the buffer to fill (up to `max_batch`, when it starts at once), trading a few milliseconds
for fewer, fuller batches. Falling behind means that at least `linger_from` items wait upstream behind the
newest buffered one, when the source can tell (`backlog`, e.g. the records Kafka holds past it), else that the
last batch held at least `linger_from` items. The first is the better sign: when each batch makes a round trip,
the items that arrive during it are few, and batches can stay small while far behind; and a large batch after a
hiccup does not mean that more are waiting. A worker that keeps up never waits, since every millisecond there
is freshness lost.
The buffer is bounded: `add` waits when it is full (backpressure all the way to the consumer). Order is kept:
batch n+1 starts after batch n has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class SmartBatcher(Generic[T]):
    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[None]],
        max_batch: int,
        max_buffer: int,
        linger_s: float = 0.0,
        on_error: Callable[[BaseException], Awaitable[None]] | None = None,
        linger_from: int = 2,
        backlog: Callable[[T], int] | None = None,
    ) -> None:
        self.on_error = on_error
        if max_buffer < max_batch:
            raise ValueError("max_buffer must be at least max_batch")
        self.handle = handle
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self.buffer: list[T] = []
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._full = asyncio.Event()  # the buffer holds a whole batch: a linger ends
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.failed: BaseException | None = None
        self.linger_s = linger_s
        self.linger_from = max(2, linger_from)
        self.backlog = backlog
        self._last_size = 0
        self.lingered = 0  # batches that waited to fill

    async def add(self, item: T) -> None:
        if self.failed is not None:
            raise RuntimeError("the batcher stopped after a failed batch") from self.failed
        while len(self.buffer) >= self.max_buffer:
            self._space.clear()
            await self._space.wait()
        self.buffer.append(item)
        if len(self.buffer) >= self.max_batch:
            self._full.set()
        self._idle.clear()
        self._ready.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="smart-batcher")

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if self.linger_s and len(self.buffer) < self.max_batch and self._falling_behind():
                await self._linger()
            batch = self.buffer[: self.max_batch]
            del self.buffer[: self.max_batch]
            if len(self.buffer) < self.max_batch:
                self._full.clear()
            if not self.buffer:
                self._ready.clear()
            self._space.set()
            try:
                await self.handle(batch)  # retry policy is the handler's; what escapes it is fatal
            except Exception as exc:
                log.exception("batch of %d failed; the batcher stops", len(batch))
                self.failed = exc
                if self.on_error is not None:
                    await self.on_error(exc)
                return
            self.batches += 1
            self._last_size = len(batch)
            if not self.buffer:
                self._idle.set()

    def _falling_behind(self) -> bool:
        if self.backlog is not None:  # the source can tell: a large last batch may be a hiccup already caught up
            return self.backlog(self.buffer[-1]) >= self.linger_from
        return self._last_size >= self.linger_from

    async def _linger(self) -> None:
        """Let the next batch fill: up to `linger_s`, less once the buffer holds a whole batch."""
        self.lingered += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.linger_s)

    async def drain(self) -> None:
        """Wait until everything added so far has been handled."""
        if self._task is not None and not self._task.done():
            await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
