"""Open-loop storefront traffic from one process: `Recommend` calls at a fixed arrival rate over grpc.aio.

Call j is *due* at start + phase + j / rate whatever happened to earlier calls, and its latency is measured
from that due time, not from when it was actually sent. A slow server therefore shows up as queueing delay
in the latencies instead of silently lowering the offered load (coordinated omission, as in wrk2). The
send lag (actual send minus due time) is recorded apart: when it grows, this process cannot keep up and the
run needs more processes (`--processes`), because its latencies then include the generator's own delay.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from streamrec.channels import insecure_scorer_aio_channel
from streamrec.loadtest.histograms import Timeline, encode, new_histogram, record_seconds
from streamrec.loadtest.schedule import Planned
from streamrec.protos import recommender_pb2, recommender_pb2_grpc
from streamrec.security import Metadata

CONNECT_TIMEOUT_S = 30.0
YIELD_EVERY = 16  # when behind schedule, let in-flight calls run between bursts of new ones
# asyncio wakes timers up to one millisecond late (epoll's resolution), which would add ~1 ms to every
# latency timed from the due time; so calls are released up to 1 ms early and timed from the earlier of
# their due time and their actual send.
EARLY_S = 0.001
StartSignal = Callable[[], float]  # blocks until the common start time (time.time()) is known, returns it


@dataclass(frozen=True)
class PagePlan:
    """Which sessions page views go to: one that had a replayed event in the last `window_s` seconds."""

    offsets: list[float]  # due time of each replayed event, ascending
    sessions: list[str]
    items: list[str]
    window_s: float = 30.0

    @classmethod
    def from_planned(cls, planned: Sequence[Planned], window_s: float = 30.0) -> PagePlan:
        return cls(
            [p.offset_s for p in planned],
            [p.event.session_id for p in planned],
            [p.event.item_id for p in planned],
            window_s,
        )

    def pick(self, at_s: float, rng: random.Random) -> tuple[str, str]:
        """(session, item on the page) for a page view at `at_s`; before the first event, the first session."""
        if not self.offsets:
            return f"cold-{rng.randrange(1_000_000)}", ""
        hi = bisect.bisect_right(self.offsets, at_s)
        lo = bisect.bisect_left(self.offsets, at_s - self.window_s, 0, hi)
        index = rng.randrange(lo, hi) if hi > lo else max(0, hi - 1)  # a quiet spell: the latest session
        return self.sessions[index], self.items[index]


@dataclass(frozen=True)
class LoadConfig:
    address: str
    rate: float  # calls/s of this process
    duration_s: float
    warmup_s: float = 0.0  # calls due before this are plotted but left out of the summary
    phase_s: float = 0.0  # this process's offset, so several processes interleave evenly
    k: int = 10
    deadline_s: float = 1.0
    max_inflight: int = 1000
    seed: int = 0
    page: str = "product"
    metadata: Metadata = ()  # sent with every call: the scorer's bearer token, where it asks for one


@dataclass
class LoadResult:
    """What one process measured, in a picklable and mergeable form (histograms HDR-encoded)."""

    latency: str = ""  # successful calls due after the warm-up, µs from due time to response
    send_lag: str = ""  # due time -> actual send, after the warm-up
    codes: Counter[str] = field(default_factory=Counter)  # after the warm-up, by gRPC status code name
    unfinished: int = 0
    timeline: dict[str, Any] = field(default_factory=dict)


class Generator:
    def __init__(self, config: LoadConfig, plan: PagePlan, start: float) -> None:
        self.config = config
        self.plan = plan
        self.start = start
        self.rng = random.Random(config.seed)
        self.latency = new_histogram()
        self.lag = new_histogram()
        self.codes: Counter[str] = Counter()
        self.timeline = Timeline()

    async def run(self, stub: recommender_pb2_grpc.RecommenderStub) -> LoadResult:
        slots = asyncio.Semaphore(self.config.max_inflight)
        interval = 1.0 / self.config.rate
        tasks: set[asyncio.Task[None]] = set()
        for j in range(int(self.config.duration_s * self.config.rate)):
            due = self.start + self.config.phase_s + j * interval
            delay = due - time.perf_counter() - EARLY_S
            if delay > 0:
                await asyncio.sleep(delay)
            elif j % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            task = asyncio.create_task(self._call(stub, slots, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        unfinished = 0
        if tasks:
            _, still = await asyncio.wait(set(tasks), timeout=self.config.deadline_s + 5.0)
            unfinished = len(still)
            for task in still:  # past its deadline and then some: count it as UNFINISHED, not as a latency
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        return LoadResult(encode(self.latency), encode(self.lag), self.codes, unfinished, self.timeline.encode())

    async def _call(self, stub: recommender_pb2_grpc.RecommenderStub, slots: asyncio.Semaphore, due: float) -> None:
        at_s = due - self.start
        session, item = self.plan.pick(at_s, self.rng)
        request = recommender_pb2.RecommendRequest(
            session_id=session,
            k=self.config.k,
            context=recommender_pb2.PageContext(page=self.config.page, item_id=item),
        )
        try:
            async with slots:  # waiting for a slot counts as latency: it is the client's queue
                sent = time.perf_counter()
                try:
                    await stub.Recommend(request, timeout=self.config.deadline_s, metadata=self.config.metadata)
                    code = "OK"
                except grpc.aio.AioRpcError as exc:  # the client edge: count by status code and go on
                    code = exc.code().name
        except asyncio.CancelledError:  # still waiting when the run ended (see `run`)
            self._count(at_s, "UNFINISHED")
            raise
        done = time.perf_counter()
        origin = min(due, sent)
        self.timeline.record(at_s, done - self.start, done - origin, code == "OK")
        self._count(at_s, code)
        if at_s >= self.config.warmup_s:
            record_seconds(self.lag, max(0.0, sent - due))
            if code == "OK":
                record_seconds(self.latency, done - origin)

    def _count(self, at_s: float, code: str) -> None:
        if at_s >= self.config.warmup_s:
            self.codes[code] += 1


async def drive(config: LoadConfig, plan: PagePlan, start_at: StartSignal | None = None) -> LoadResult:
    """Connect, then wait for the start time (`start_at()` blocks until it is known; None = now) and run."""
    async with insecure_scorer_aio_channel(config.address) as channel:  # one scorer or a list
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        start_wall = await asyncio.to_thread(start_at) if start_at is not None else time.time()
        start = time.perf_counter() + max(0.0, start_wall - time.time())
        return await Generator(config, plan, start).run(stub)


def run_generator(config: LoadConfig, plan: PagePlan, start_at: StartSignal | None = None) -> LoadResult:
    return asyncio.run(drive(config, plan, start_at))
