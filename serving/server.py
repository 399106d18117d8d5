"""The scorer's gRPC server: Recommend, Score, Info and Search, standard health and reflection, graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from streamrec.errors import ConfigError
from streamrec.features.session_store import SessionState
from streamrec.protos import recommender_pb2 as pb
from streamrec.protos import recommender_pb2_grpc
from streamrec.redis import connect
from streamrec.security import parse_tokens, server_credentials
from streamrec.serving import metrics, ports, prebuilt, recommender
from streamrec.serving.auth import TokenAuthInterceptor
from streamrec.serving.batching import InferenceBatcher
from streamrec.serving.config import ServingSettings
from streamrec.serving.item_cache import ItemFeatureCache
from streamrec.serving.model_store import ModelHolder
from streamrec.serving.popularity import PopularitySource
from streamrec.serving.ranking import MlpReranker, Rerankers
from streamrec.serving.rules import REASON_SEARCHED, Scored, blend_search
from streamrec.serving.runtime import ModelRuntime
from streamrec.serving.search import SearchParts, build_search
from streamrec.serving.session_reader import Read, SessionReader
from streamrec.serving.validation import Undecodable, lenient, recommend_problem, score_problem, search_problem

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# A call is "alone" (and may read Redis in place) when the last one left longer ago than this: between one
# client's sequential calls the gap is longer, under concurrent load shorter (docs/benchmarks.md, "Serving").
IDLE_BEFORE_ALONE_S = 0.00025
SESSION_MODEL_CANDIDATES = 200  # of the session model's list, what a search may favour


@dataclass
class BoundModel:
    """One request's model: the runtime read once at the start, and the shared micro-batcher."""

    runtime: ModelRuntime
    batcher: InferenceBatcher

    @property
    def version(self) -> str:
        return self.runtime.version

    @property
    def repeats(self) -> bool:
        return bool(self.runtime.manifest.model_args.get("repeat_bias"))

    def knows_any(self, history: list[str]) -> bool:
        index = self.runtime.index
        return any(item in index for item in history)

    async def candidates(self, history: list[str], limit: int) -> recommender.Candidates:
        return await self.batcher.candidates(self.runtime, history, limit)

    async def many(self, histories: list[list[str]], limit: int) -> list[recommender.Candidates]:
        return await self.batcher.many(self.runtime, histories, limit)


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    def __init__(
        self,
        holder: ModelHolder,
        reader: SessionReader,
        popularity: PopularitySource,
        batcher: InferenceBatcher,
        settings: ServingSettings,
        rerankers: Rerankers | None = None,
        search: SearchParts | None = None,
    ) -> None:
        self.rerankers = rerankers
        self.search = search
        self.holder = holder
        self.reader = reader
        self.popularity = popularity
        self.batcher = batcher
        self.settings = settings
        self.in_flight = 0
        self.idle_since = 0.0  # perf_counter when the last request left and none was left in flight
        self.started = time.monotonic()
        self._policies: dict[str, recommender.Policy] = {}

    def _popular(self) -> recommender.Popular:
        return recommender.Popular(self.popularity.items, self.popularity.from_stream)

    def _reranker(self, runtime: ModelRuntime) -> MlpReranker | None:
        return self.rerankers.get(self.holder.registry / runtime.version) if self.rerankers else None

    def _policy(self, runtime: ModelRuntime) -> recommender.Policy:
        # built once per model version (a page view must not pay for path joins and a dict lookup each time)
        cached = self._policies.get(runtime.version)
        if cached is None:
            cached = recommender.Policy(
                self.settings.max_per_category, runtime.categories, reranker=self._reranker(runtime)
            )
            # the version in service and the one before it: in-flight requests may still hold the old runtime
            self._policies = {**dict(list(self._policies.items())[-1:]), runtime.version: cached}
        return cached

    async def _admit(self, rpc: str, context: grpc.aio.ServicerContext) -> None:
        """Shed load beyond the concurrency limit instead of queueing it without bound."""
        if self.in_flight >= self.settings.max_in_flight:
            metrics.SHED.inc()
            limit = self.settings.max_in_flight
            await self._reject(
                rpc,
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"scorer at its limit of {limit} concurrent requests; retry with backoff",
            )

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            metrics.IN_FLIGHT.dec()
            if not self.in_flight:
                self.idle_since = time.perf_counter()

    def _alone(self) -> bool:
        """This request is the only one, and the scorer was idle before it came: a blocking read then keeps
        nobody waiting. Under load grpc.aio starts one call per loop iteration, so a call can be the only one in
        flight while the next is already queued; those come within a few hundred microseconds of the last."""
        return self.in_flight == 1 and time.perf_counter() - self.idle_since > IDLE_BEFORE_ALONE_S

    async def _reject(self, rpc: str, context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> None:
        metrics.REQUESTS.labels(rpc, code.name).inc()
        await context.abort(code, message)

    async def Recommend(
        self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendResponse | bytes:
        """The answer as a message, or as the bytes of one where the worker's stored answer serves (prebuilt)."""
        await self._admit("Recommend", context)
        problem = recommend_problem(request)
        if problem:
            await self._reject("Recommend", context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        started = time.perf_counter()
        with self._slot():
            answer = await self._recommend(request, context)
        metrics.RECOMMEND_LATENCY.observe(time.perf_counter() - started)
        metrics.RECOMMEND_OK.inc()
        if isinstance(answer, bytes):
            metrics.REFRESHED.inc()
            metrics.PREBUILT.inc()
            return answer
        metrics.SOURCES.labels(answer.source).inc()
        response = pb.RecommendResponse(
            model_version=answer.model_version,
            fallback=answer.fallback,
            state_age_ms=answer.state_age_ms,
            source=answer.source,
            cause_event_id=answer.cause_event_id,
        )
        prebuilt.add_items(response.items, answer.items)
        return response

    async def _recommend(
        self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommender.Answer | bytes:
        """The stored answer's bytes where they serve (serving/prebuilt.py), else the answer built for the call."""
        # a request that is alone reads in place: nobody waits meanwhile, and not suspending saves the most
        state, refreshed, redis_ok = await self._read_session(request.session_id, context)
        excludes = set(request.exclude_item_ids)
        if request.context.item_id:
            excludes.add(request.context.item_id)
        runtime = self.holder.runtime  # one reference for the whole call: a swap cannot split it
        now_ms = int(time.time() * 1000)
        searched = self.search is not None and state is not None and bool(state.queries)
        if self.settings.prebuilt_answers and not searched:
            ready = prebuilt.answer_for(state, refreshed, runtime.version, request.k, excludes, now_ms)
            if ready is not None:
                return ready
        answer = await recommender.recommend(
            BoundModel(runtime, self.batcher),
            self._popular(),
            request.k,
            excludes,
            state,
            refreshed,
            now_ms,
            self._policy(runtime),
        )
        if answer.fallback:
            metrics.FALLBACKS.labels("cold_session" if redis_ok else "redis_unavailable").inc()
        if searched and state is not None:
            answer = await self._with_search(answer, state, request.k, excludes)
        return answer

    async def _read_session(self, session_id: str, context: grpc.aio.ServicerContext) -> Read:
        """The session's state and refreshed list, read within the Redis timeout and what is left of the deadline."""
        remaining = context.time_remaining()
        timeout = self.settings.redis_timeout_s if remaining is None else min(self.settings.redis_timeout_s, remaining)
        return await self.reader.read(session_id, timeout, alone=self._alone())

    async def _with_search(
        self, answer: recommender.Answer, state: SessionState, k: int, excludes: set[str]
    ) -> recommender.Answer:
        """A session that searched sees its latest query's results woven into its recommendations."""
        assert self.search is not None
        query = state.queries[-1]
        ranked = await asyncio.to_thread(self.search.engine.rank, query)
        gone = excludes | set(state.purchases)
        hits = [(item, score, f"{REASON_SEARCHED} '{query}'") for item, score, _ in ranked.items if item not in gone]
        return dataclasses.replace(answer, items=blend_search(answer.items, hits, k))

    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        await self._admit("Score", context)
        problem = score_problem(request)
        if problem:
            await self._reject("Score", context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        started = time.perf_counter()
        runtime = self.holder.runtime
        histories = [(s.session_id, list(s.item_ids), set(s.exclude_item_ids)) for s in request.sessions]
        if log.isEnabledFor(logging.DEBUG):
            for s in request.sessions:
                log.debug("score %s", s.session_id, extra={"event_id": s.cause_event_id, "session_id": s.session_id})
        with self._slot():
            results = await recommender.score_sessions(
                BoundModel(runtime, self.batcher), self._popular(), request.k, histories, self._policy(runtime)
            )
        metrics.SCORE_LATENCY.observe(time.perf_counter() - started)
        metrics.SCORE_OK.inc()
        response = pb.ScoreResponse(model_version=runtime.version)
        add_result = response.results.add
        if request.columnar:
            encode = prebuilt.encode if request.prebuilt else _nothing
            for session_id, items in results:
                add_result(
                    session_id=session_id,
                    item_ids=[i[0] for i in items],
                    scores=[i[1] for i in items],
                    response_items=encode(items),
                )
        else:
            for session_id, items in results:
                prebuilt.add_items(add_result(session_id=session_id).items, items)
        return response

    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        await self._admit("Search", context)
        problem = search_problem(request)
        if problem:
            await self._reject("Search", context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        if self.search is None:
            await self._reject(
                "Search",
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "search is off on this scorer (STREAMREC_SERVING_SEARCH)",
            )
        assert self.search is not None
        started = time.perf_counter()
        with self._slot():
            state, model_scores = None, {}
            if request.session_id:
                state, _, _ = await self._read_session(request.session_id, context)
                if state is not None and state.items:
                    model_scores = await self._session_model_scores(state.items)
            # encoding the query and ranking take milliseconds of CPU: off the event loop, which serves the rest
            response = await asyncio.to_thread(
                self.search.answer, request, state, model_scores, self.settings.max_per_category
            )
        metrics.SEARCH_LATENCY.observe(time.perf_counter() - started)
        metrics.SEARCH_OK.inc()
        return response

    async def _session_model_scores(self, history: list[str]) -> dict[str, float]:
        """The session model's best items for `history`, scaled so that its best is 1."""
        runtime = self.holder.runtime
        ranked = await BoundModel(runtime, self.batcher).candidates(history, SESSION_MODEL_CANDIDATES)
        if not ranked:
            return {}
        count = len(ranked)
        return {item: 1.0 - rank / count for rank, (item, _) in enumerate(ranked)}

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        if isinstance(request, Undecodable):
            await self._reject("Info", context, grpc.StatusCode.INVALID_ARGUMENT, request.problem)
        runtime = self.holder.runtime
        return pb.InfoResponse(
            model_version=runtime.version,
            providers=runtime.providers,
            model_type=runtime.manifest.model_type,
            redis_ok=self.popularity.redis_ok and self.reader.redis_ok,
            trending_from_stream=self.popularity.from_stream,
            in_flight=self.in_flight,
            max_in_flight=self.settings.max_in_flight,
            uptime_s=time.monotonic() - self.started,
            ranker=self._reranker(runtime) is not None,
        )


@dataclass
class Scorer:
    """A running scorer: the server, its port, and what must be stopped with it."""

    server: grpc.aio.Server
    port: int
    service: RecommenderService
    health: health.aio.HealthServicer

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING (balancers stop sending), let in-flight calls finish, then close."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace_s)
        service = self.service
        await service.holder.stop()
        await service.popularity.stop()
        if service.rerankers is not None:
            await service.rerankers.item_cache.stop()
        if service.search is not None:
            service.search.feed.stop()
        service.batcher.close()
        await service.reader.close()
        await service.popularity.client.aclose()


def _nothing(items: list[Scored]) -> bytes:
    return b""


def _serialize_recommend(response: pb.RecommendResponse | bytes) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_recommender(service: RecommenderService, server: grpc.aio.Server) -> None:
    """The generated add_RecommenderServicer_to_server, but with request parsing that never raises (see
    validation.lenient): undecodable bytes are INVALID_ARGUMENT, not UNKNOWN."""

    def handler(method: Any, request: type[Any], serialize: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=lenient(request), response_serializer=serialize
        )

    handlers = {
        # Recommend answers a message or, where the stored answer serves, its bytes (serving/prebuilt.py)
        "Recommend": handler(service.Recommend, pb.RecommendRequest, _serialize_recommend),
        "Score": handler(service.Score, pb.ScoreRequest, pb.ScoreResponse.SerializeToString),
        "Info": handler(service.Info, pb.InfoRequest, pb.InfoResponse.SerializeToString),
        "Search": handler(service.Search, pb.SearchRequest, pb.SearchResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


async def create_server(settings: ServingSettings, holder: ModelHolder | None = None) -> Scorer:
    """Build and start the scorer; returns it with its bound port (port 0 in settings picks a free one)."""
    holder = holder or ModelHolder(settings.registry, settings.providers, settings.ort_threads, settings.model_version)
    redis_url = settings.core.redis_url.get_secret_value()  # one Redis, or a Redis Cluster (redis+cluster://)
    session_client = connect(redis_url, settings.redis_timeout_s)
    reader = SessionReader(
        session_client,
        settings.core.project,
        session_client.blocking_reader(settings.blocking_read_timeout_ms / 1000),
    )
    popularity = PopularitySource(
        connect(redis_url, settings.redis_timeout_s),
        settings.core.project,
        holder.runtime.manifest.popular_items,
        settings.trending_refresh_s,
    )
    batcher = InferenceBatcher(settings.max_batch, settings.max_wait_ms / 1000)
    item_cache = ItemFeatureCache(connect(redis_url), settings.core.project, settings.trending_refresh_s)
    rerankers = Rerankers(item_cache)
    rerankers.get(holder.registry / holder.runtime.version)  # the served version's ranker, loaded up front
    search = None
    if settings.search:
        search = build_search(
            redis_url, settings.core.project, settings.search_dir, settings.encoder_dir, settings.encoder_variant
        )
    service = RecommenderService(holder, reader, popularity, batcher, settings, rerankers, search)
    tokens = parse_tokens(settings.auth_tokens)
    interceptors = [TokenAuthInterceptor(tokens)] if tokens else []
    if not tokens:
        log.warning("no auth tokens configured: Recommend, Score and Info are open to any caller")
    options = [
        ("grpc.so_reuseport", 1 if settings.shared_port else 0),  # serving/ports.py says why
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    if settings.max_connection_age_s > 0:  # clients then reconnect, re-resolve DNS and find new replicas
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.grace_s * 1000)),
        ]
    server = grpc.aio.server(interceptors=interceptors, options=options)
    add_recommender(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_NAME, reflection.SERVICE_NAME), server)
    port = _bind(server, settings)
    await server.start()
    await popularity.refresh()
    popularity.start()
    if item_cache.active:
        await item_cache.refresh()
    item_cache.start()
    if settings.reload_interval_s > 0:
        holder.start_watching(settings.reload_interval_s)
    if search is not None:
        search.feed.start()  # loads the catalogue, then follows its changes; Search answers from what is loaded
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    runtime = holder.runtime
    log.info(
        "scorer listening on %s:%d, model %s, providers %s", settings.host, port, runtime.version, runtime.providers
    )
    return Scorer(server, port, service, health_servicer)


def _bind(server: grpc.aio.Server, settings: ServingSettings) -> int:
    """The port bound; ConfigError that says why when the address cannot be listened on (a port in use)."""
    address = f"{settings.host}:{settings.port}"
    try:
        port = _add_port(server, settings, address)
    except RuntimeError:  # gRPC's "Failed to bind": find the reason ourselves
        port = 0
    if port == 0:
        raise ports.bind_error(settings.host, settings.port)
    return port


def _add_port(server: grpc.aio.Server, settings: ServingSettings, address: str) -> int:
    if settings.tls_cert_file is None and settings.tls_key_file is None:
        return server.add_insecure_port(address)
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ConfigError("TLS needs both STREAMREC_SERVING_TLS_CERT_FILE and STREAMREC_SERVING_TLS_KEY_FILE")
    credentials = server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    log.info("TLS on%s", " with client certificates required" if settings.tls_client_ca_file else "")
    return server.add_secure_port(address, credentials)


async def serve(settings: ServingSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain: NOT_SERVING, in-flight calls finish within grace_s."""
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    sync_stop = threading.Event()
    if settings.registry_url:  # an edge scorer: pull verified versions from the remote registry into `registry`
        from streamrec.registry_sync import sync_forever, wait_for_model

        await asyncio.to_thread(wait_for_model, settings.registry_url, settings.registry, settings.registry_wait_s)
        threading.Thread(
            target=sync_forever,
            args=(settings.registry_url, settings.registry, settings.registry_sync_s),
            kwargs={"stop": sync_stop},
            name="registry-sync",
            daemon=True,
        ).start()
    scorer = await create_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining (grace %.1fs)", settings.grace_s)
    sync_stop.set()
    await scorer.stop(settings.grace_s)


def run_server(settings: ServingSettings) -> int:
    asyncio.run(serve(settings))
    return 0
