"""Drive Recommend over one grpc.aio channel: one sequential client's latency, then closed-loop load steps.

Throughput at a latency bound is found by stepping up the concurrency of a closed loop (N callers, each sending
its next request as soon as its last one is answered) and keeping the best level whose p99 stays within the
bound. A closed loop never offers more than the server answers, so each level's p99 is the latency at the
throughput it reached; stepping stops at the first level over the bound, or with errors, or once throughput
stops growing. Several servers are measured together, in rounds that alternate between them, so that a change
in the machine's speed during a run (common on a shared two-core machine) falls on all of them alike.
`grpc.RpcError` is caught here, at the client edge, and counted: a level with errors does not qualify.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from streamrec.protos import recommender_pb2_grpc

CALL_TIMEOUT_S = 2.0
SATURATED = 1.05  # a level must beat the best throughput so far by 5 % to be worth a higher one


@dataclass
class Run:
    """Latencies of the calls in one measured window, and what came back."""

    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)

    def extend(self, other: Run) -> None:
        """Add another window's calls to this one (the rounds of one server in an interleaved run)."""
        self.latencies_ms += other.latencies_ms
        self.seconds += other.seconds
        self.errors.update(other.errors)
        self.sources.update(other.sources)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Level:
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def within(self, p99_limit_ms: float) -> bool:
        return self.errors == 0 and self.p99_ms <= p99_limit_ms


class Driver:
    """Calls `method` (Recommend, or Search with SearchRequests) with the given requests, in turn, over one
    channel."""

    def __init__(self, address: str, requests: Sequence[Any], method: str = "Recommend") -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = recommender_pb2_grpc.RecommenderStub(self.channel)
        self.method = getattr(self.stub, method)
        self.requests = itertools.cycle(requests)

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, run: Run | None) -> None:
        started = time.perf_counter()
        try:
            reply = await self.method(next(self.requests), timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:  # the client edge: count it, the level then does not qualify
            if run is not None:
                run.errors[exc.code().name] += 1
            return
        if run is not None:
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
            run.sources[reply.source] += 1

    async def sequential(self, calls: int, warmup: int) -> Run:
        """One client, one call at a time: the latency a lone page view sees."""
        for _ in range(warmup):
            await self._call(None)
        run = Run()
        started = time.perf_counter()
        for _ in range(calls):
            await self._call(run)
        run.seconds = time.perf_counter() - started
        return run

    async def closed_loop(self, concurrency: int, seconds: float, warmup_s: float) -> Run:
        """`concurrency` callers for `warmup_s` (not recorded) and then `seconds` (recorded)."""
        run = Run()
        loop = asyncio.get_running_loop()
        record_from = loop.time() + warmup_s
        stop_at = record_from + seconds

        async def caller() -> None:
            while (now := loop.time()) < stop_at:
                await self._call(run if now >= record_from else None)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        run.seconds = loop.time() - record_from  # to the last answer, so calls still in flight at stop_at count
        return run


async def sequential_together(drivers: dict[str, Driver], calls: int, warmup: int, rounds: int) -> dict[str, Run]:
    """`calls` sequential calls per server, in `rounds` blocks that alternate between the servers: a change in
    the machine's speed during the run then falls on every server alike."""
    runs = {name: Run() for name in drivers}
    for driver in drivers.values():
        await driver.sequential(0, warmup)
    for n in range(rounds):
        share = calls // rounds + (1 if n < calls % rounds else 0)
        for name, driver in drivers.items():
            runs[name].extend(await driver.sequential(share, 0))
    return runs


async def step_up_together(
    drivers: dict[str, Driver], levels: Sequence[int], seconds: float, p99_limit_ms: float, rounds: int
) -> dict[str, list[Level]]:
    """Driver.step_up for several servers at once: each level is measured in `rounds` windows that alternate
    between the servers still stepping; each server stops by its own rule."""
    measured: dict[str, list[Level]] = {name: [] for name in drivers}
    best = dict.fromkeys(drivers, 0.0)
    stepping = list(drivers)
    window = seconds / rounds
    for concurrency in levels:
        if not stepping:
            break
        runs = {name: Run() for name in stepping}
        for _ in range(rounds):
            for name in stepping:
                runs[name].extend(await drivers[name].closed_loop(concurrency, window, warmup_s=min(0.25, window / 4)))
        for name, run in runs.items():
            level = Level(concurrency, run.rps, run.percentile_ms(50), run.percentile_ms(99), sum(run.errors.values()))
            measured[name].append(level)
            if not level.within(p99_limit_ms) or level.rps < best[name] * SATURATED:
                stepping.remove(name)
            else:
                best[name] = level.rps
    return measured


def max_rps_within(levels: Sequence[Level], p99_limit_ms: float) -> float:
    """The highest throughput among the levels whose p99 stayed within the bound (0 when none did)."""
    return max((level.rps for level in levels if level.within(p99_limit_ms)), default=0.0)
