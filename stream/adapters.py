"""The worker's connections to the outside: Redis state writer, gRPC scorer client, dead-letter producer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
import redis.asyncio as aioredis

from features.session_store import SESSION_TTL_S, Recommendations, SessionState, recs_key, session_key
from protos import recommender_pb2, recommender_pb2_grpc
from stream.aggregates import AppliedBatch
from stream.processor import RawRecord
from streamrec.errors import ScorerError

log = logging.getLogger(__name__)


class RedisStateWriter:
    """Writes session states, features and refreshed lists of one batch in a single pipeline round trip."""

    def __init__(self, client: aioredis.Redis, project: str, ttl_s: int = SESSION_TTL_S) -> None:
        self.client = client
        self.project = project
        self.ttl_s = ttl_s

    async def write(
        self, states: dict[str, SessionState], recs: dict[str, Recommendations], aggregates: AppliedBatch
    ) -> None:
        pipe = self.client.pipeline(transaction=False)
        for sid, state in states.items():
            pipe.set(session_key(self.project, sid), state.to_json(), ex=self.ttl_s)
        for sid, rec in recs.items():
            pipe.set(recs_key(self.project, sid), rec.to_json(), ex=self.ttl_s)
        await pipe.execute()


class GrpcScorer:
    """Client of the scorer's batched Score RPC; every failure becomes ScorerError (the worker degrades)."""

    def __init__(self, address: str, timeout_s: float) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def _ensure(self) -> Any:
        if self._stub is None:
            # created lazily: a grpc.aio channel binds to the event loop running at creation time
            self._channel = grpc.aio.insecure_channel(self.address, options=[("grpc.lb_policy_name", "round_robin")])
            self._stub = recommender_pb2_grpc.RecommenderStub(self._channel)
        return self._stub

    async def score(
        self, sessions: Sequence[tuple[str, list[str], list[str]]], k: int
    ) -> tuple[dict[str, list[tuple[str, float]]], str]:
        request = recommender_pb2.ScoreRequest(
            k=k,
            sessions=[
                recommender_pb2.SessionHistory(session_id=sid, item_ids=items, exclude_item_ids=exclude)
                for sid, items, exclude in sessions
            ],
        )
        try:
            reply = await self._ensure().Score(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:  # the client edge: turn transport errors into our own
            raise ScorerError(f"Score failed: {exc.code().name}: {exc.details()}") from exc
        lists = {r.session_id: [(i.item_id, i.score) for i in r.items] for r in reply.results}
        return lists, reply.model_version

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class TopicDeadLetters:
    """Sends a bad record's original bytes to the dead-letter topic with `reason` and `detail` headers."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    async def send(self, record: RawRecord, reason: str, detail: str) -> None:
        log.warning("dead letter (%s) at partition %d offset %d: %s", reason, record.partition, record.offset, detail)
        headers = {"reason": reason.encode(), "detail": detail[:512].encode(errors="replace")}
        await self.topic.send(key=record.key, value=record.value or b"", headers=headers)
