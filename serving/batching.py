"""Micro-batching: concurrent requests for candidates are coalesced into one ONNX Runtime call.

Smart batching, as in the worker: when no inference is running a request goes at once, on the event loop
itself (no added latency for a lone client); requests arriving while one runs are queued and go together in
the next call, up to `max_batch`. `max_wait_s` > 0 additionally holds a short queue that long, to fill it,
before running.
Inference runs on one dedicated thread (ONNX Runtime releases the GIL), so the event loop keeps accepting
requests meanwhile. Each request names its runtime; a batch never mixes two models across a hot swap.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from serving import metrics
from serving.runtime import ModelRuntime

Candidates = list[tuple[str, float]] | None


@dataclass
class _Pending:
    runtime: ModelRuntime
    history: list[str]
    limit: int
    future: asyncio.Future[Candidates]


class InferenceBatcher:
    def __init__(self, max_batch: int = 64, max_wait_s: float = 0.0) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue: list[_Pending] = []
        self.running = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")

    async def candidates(self, runtime: ModelRuntime, history: list[str], limit: int) -> Candidates:
        if not self.running and not self.queue and not self.max_wait_s:
            # a lone request: the hop to the inference thread would cost more than the inference itself
            metrics.BATCH.observe(1)
            return runtime.candidates([history], limit)[0]
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
        return await loop.run_in_executor(self.executor, runtime.candidates, histories, limit)

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
                    self.executor, runtime.candidates, [p.history for p in group], max(p.limit for p in group)
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
