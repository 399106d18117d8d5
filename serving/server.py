"""The scorer's gRPC server: Recommend and Score, standard health and reflection, graceful drain."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from features.session_store import Recommendations, SessionState, recs_key, session_key
from protos import recommender_pb2, recommender_pb2_grpc
from serving import recommender
from serving.config import ServingSettings
from serving.runtime import ModelRuntime
from serving.validation import recommend_problem, score_problem
from streamrec.artifact import current_version

log = logging.getLogger(__name__)
SERVICE_NAME = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name


class SessionReader:
    """Reads a session's state and refreshed list with one MGET; Redis trouble returns (None, None) + a log."""

    def __init__(self, redis_url: str, project: str, timeout_s: float) -> None:
        self.client = aioredis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.project = project
        self.unavailable = 0

    async def read(self, session_id: str) -> tuple[SessionState | None, Recommendations | None, bool]:
        try:
            raw_state, raw_recs = await self.client.mget(
                session_key(self.project, session_id), recs_key(self.project, session_id)
            )
        except (aioredis.RedisError, OSError) as exc:
            self.unavailable += 1
            log.warning("redis unavailable, answering from popularity: %s", exc)
            return None, None, False
        state = SessionState.from_json(raw_state) if raw_state else None
        recs = Recommendations.from_json(raw_recs) if raw_recs else None
        return state, recs, True

    async def close(self) -> None:
        await self.client.aclose()


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    def __init__(self, runtime: ModelRuntime, reader: SessionReader) -> None:
        self.runtime = runtime
        self.reader = reader

    @property
    def popular(self) -> list[str]:
        return self.runtime.manifest.popular_items

    async def Recommend(
        self, request: recommender_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        problem = recommend_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        state, refreshed, _ = await self.reader.read(request.session_id)
        excludes = set(request.exclude_item_ids)
        if request.context.item_id:
            excludes.add(request.context.item_id)
        runtime = self.runtime  # one reference for the whole call, so a swap cannot split it
        answer = recommender.recommend(
            runtime, self.popular, request.k, excludes, state, refreshed, int(time.time() * 1000)
        )
        return recommender_pb2.RecommendResponse(
            items=[recommender_pb2.ScoredItem(item_id=i, score=s, reason=r) for i, s, r in answer.items],
            model_version=answer.model_version,
            fallback=answer.fallback,
            state_age_ms=answer.state_age_ms,
            source=answer.source,
        )

    async def Score(
        self, request: recommender_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.ScoreResponse:
        problem = score_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        runtime = self.runtime
        histories = [(s.session_id, list(s.item_ids), set(s.exclude_item_ids)) for s in request.sessions]
        results = recommender.score_sessions(runtime, self.popular, request.k, histories)
        return recommender_pb2.ScoreResponse(
            model_version=runtime.version,
            results=[
                recommender_pb2.SessionRecommendations(
                    session_id=sid,
                    items=[recommender_pb2.ScoredItem(item_id=i, score=s, reason=r) for i, s, r in items],
                )
                for sid, items in results
            ],
        )


def load_runtime(settings: ServingSettings) -> ModelRuntime:
    version = settings.model_version or current_version(settings.registry)
    return ModelRuntime(Path(settings.registry) / version, settings.providers, settings.ort_threads)


async def create_server(
    settings: ServingSettings, runtime: ModelRuntime | None = None
) -> tuple[grpc.aio.Server, int, RecommenderService]:
    """Build and start the server; returns it, its bound port and the service (for tests and reloads)."""
    runtime = runtime or load_runtime(settings)
    reader = SessionReader(settings.core.redis_url, settings.core.project, settings.redis_timeout_s)
    service = RecommenderService(runtime, reader)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
    )
    recommender_pb2_grpc.add_RecommenderServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("scorer listening on %s:%d, model %s, providers %s", settings.host, port, runtime.version,
             runtime.providers)  # fmt: skip
    return server, port, service


async def serve(settings: ServingSettings) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting calls and let in-flight ones finish within grace_s."""
    server, _, service = await create_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining (grace %.1fs)", settings.grace_s)
    await server.stop(settings.grace_s)
    await service.reader.close()


def run_server(settings: ServingSettings) -> int:
    asyncio.run(serve(settings))
    return 0
