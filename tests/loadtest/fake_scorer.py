"""Small real Recommender servers for the load tester's tests: a slow one and one whose session state is scripted.

`SlowRecommender` serves one call at a time, each taking `service_s` (a saturated scorer). `StateRecommender`
answers like the real scorer from a session state whose write time the test sets. Each runs as a real
grpc.aio server on a free port, on its own event loop in a background thread, so the code under test talks
to it over loopback exactly as it talks to the scorer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc

from streamrec.protos import recommender_pb2, recommender_pb2_grpc

S = TypeVar("S", bound=recommender_pb2_grpc.RecommenderServicer)


class SlowRecommender(recommender_pb2_grpc.RecommenderServicer):
    def __init__(self, service_s: float) -> None:
        self.service_s = service_s
        self.calls = 0
        self._one_at_a_time: asyncio.Lock | None = None

    async def Recommend(
        self, request: recommender_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:  # a single server: calls queue here, as at a saturated scorer
            await asyncio.sleep(self.service_s)
            self.calls += 1
        item = recommender_pb2.ScoredItem(item_id="i1", score=1.0, reason="slow")
        return recommender_pb2.RecommendResponse(items=[item], model_version="slow", source="popularity")


class StateRecommender(recommender_pb2_grpc.RecommenderServicer):
    """`updated_ms[session]` is when the worker (the test) last wrote that session's state; absent = no state."""

    def __init__(self) -> None:
        self.updated_ms: dict[str, int] = {}

    async def Recommend(
        self, request: recommender_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        updated = self.updated_ms.get(request.session_id)
        if updated is None:
            return recommender_pb2.RecommendResponse(fallback=True, state_age_ms=-1, source="popularity")
        age = max(0, int(time.time() * 1000) - updated)
        return recommender_pb2.RecommendResponse(state_age_ms=age, source="refreshed")


async def _start(servicer: recommender_pb2_grpc.RecommenderServicer) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()  # created on the loop that will run it: grpc.aio binds to the current loop
    recommender_pb2_grpc.add_RecommenderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@contextmanager
def slow_server(service_s: float) -> Iterator[tuple[str, SlowRecommender]]:
    """Yield (address, servicer) of a running slow server; stopped on exit."""
    with serving(SlowRecommender(service_s)) as address_and_servicer:
        yield address_and_servicer


@contextmanager
def serving(servicer: S) -> Iterator[tuple[str, S]]:
    """Yield (address, servicer) of a real gRPC server for `servicer`; stopped on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-scorer", daemon=True)
    thread.start()
    server, port = asyncio.run_coroutine_threadsafe(_start(servicer), loop).result(10)
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
