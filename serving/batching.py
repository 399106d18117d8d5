"""Micro-batching: concurrent requests for candidates are coalesced into one ONNX Runtime call.

Smart batching, as in the worker: when no inference is running a request goes at once (no added latency for a
lone client; on the event loop itself while inference is measured to take under 0.5 ms); requests arriving
while one runs are queued and go together in the next call, up to `max_batch`. `max_wait_s` > 0 additionally
holds a short queue that long, to fill it, before running. Inference runs on one dedicated thread (ONNX
Runtime releases the GIL), so the event loop keeps accepting requests meanwhile. Each request names its
runtime; a batch never mixes two models across a hot swap.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from streamrec.serving import metrics
from streamrec.serving.runtime import ModelRuntime

Candidates = list[tuple[str, float]] | None
INLINE_UNDER_S = 0.0005  # inference this fast runs on the event loop for a lone request


@dataclass
class _Pending:
    runtime: ModelRuntime
    history: list[str]
    limit: int
    future: asyncio.Future[Candidates]


class InferenceBatcher:
    def __init__(self, max_batch: int = 64, max_wait_s: float = 0.0, inline_under_s: float = INLINE_UNDER_S) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.inline_under_s = inline_under_s
        self.typical_s = float("inf")  # moving average of one inference; unknown until measured
        self.queue: list[_Pending] = []
        self.running = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")

    async def candidates(self, runtime: ModelRuntime, history: list[str], limit: int) -> Candidates:
        if not self.running and not self.queue and not self.max_wait_s and self.typical_s < self.inline_under_s:
            # a lone request and a fast model: the hop to the inference thread would cost more than inference;
            # a slow model (a huge catalogue on CPU) must never run here, it would stall every other call
            metrics.BATCH.observe(1)
            started = time.perf_counter()
            result = runtime.candidates([history], limit)[0]
            self._learn(time.perf_counter() - started)
            return result
        future: asyncio.Future[Candidates] = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(runtime, history, limit, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def many(self, runtime: ModelRuntime, histories: list[list[str]], limit: int) -> list[Candidates]:
        """A caller's own batch (the worker's Score call) goes straight to the runtime in one call."""
        loop = asyncio.get_running_loop()
        metrics.BATCH.observe(len(histories))
        return await loop.run_in_executor(self.executor, self._timed, runtime, histories, limit)

    def _timed(self, runtime: ModelRuntime, histories: list[list[str]], limit: int) -> list[Candidates]:
        started = time.perf_counter()
        result = runtime.candidates(histories, limit)
        if len(histories) == 1:
            self._learn(time.perf_counter() - started)
        return result

    def _learn(self, seconds: float) -> None:
        self.typical_s = seconds if self.typical_s == float("inf") else 0.8 * self.typical_s + 0.2 * seconds

    async def _drain(self) -> None:
        try:
            while self.queue:
                if self.max_wait_s and len(self.queue) < self.max_batch:
                    await asyncio.sleep(self.max_wait_s)
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                await self._run(batch)
        finally:
            self.running = False

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for runtime in {id(p.runtime): p.runtime for p in batch}.values():
            group = [p for p in batch if p.runtime is runtime]
            metrics.BATCH.observe(len(group))
            try:
                results = await loop.run_in_executor(
                    self.executor, self._timed, runtime, [p.history for p in group], max(p.limit for p in group)
                )
            except Exception as exc:  # the failure belongs to each waiting request, not to this loop
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending, result in zip(group, results, strict=True):
                if not pending.future.done():  # the caller may have gone (deadline, cancel)
                    pending.future.set_result(result[: pending.limit] if result is not None else None)

    def close(self) -> None:
        self.executor.shutdown(wait=False)
