"""The worker's connections to the outside: Redis state writer, gRPC scorer client, dead-letter producer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from pydantic import SecretStr

from streamrec.channels import scorer_channel_options
from streamrec.errors import ScorerError
from streamrec.features.online import FeatureLayout
from streamrec.features.schema import SESSION_TTL_S
from streamrec.features.session_store import (
    PUT_IF_NEWER,
    Recommendations,
    SessionState,
    recs_key,
    session_key,
)
from streamrec.protos import recommender_pb2, recommender_pb2_grpc
from streamrec.redis import Command, RedisClient, Script, execute_with_scripts
from streamrec.security import bearer_metadata
from streamrec.stream.aggregates import AppliedBatch
from streamrec.stream.processor import RawRecord, Refresh

log = logging.getLogger(__name__)


class RedisStateStore:
    """The online copy of session state: read for a batch in one MGET; states, Feast online features and
    refreshed lists written in one pipelined round trip.

    States and lists are written only if no newer record's result is stored (PUT_IF_NEWER). Feature rows are
    absolute values (state, and windows from the aggregate script), so writing a batch twice, as a retry or a
    redelivery does, leaves the same rows.
    """

    def __init__(self, client: RedisClient, project: str, ttl_s: int = SESSION_TTL_S) -> None:
        self.client = client
        self.project = project
        self.ttl_s = ttl_s
        self.features = FeatureLayout(project)
        self.put_if_newer = Script(PUT_IF_NEWER)

    async def read_states(self, session_ids: Sequence[str]) -> dict[str, SessionState]:
        if not session_ids:
            return {}
        values = await self.client.mget(*(session_key(self.project, sid) for sid in session_ids))
        return {sid: SessionState.from_json(raw) for sid, raw in zip(session_ids, values, strict=True) if raw}

    async def write(
        self, states: dict[str, SessionState], recs: dict[str, Recommendations], aggregates: AppliedBatch
    ) -> None:
        put = self.put_if_newer.command
        commands: list[Command] = [
            put([session_key(self.project, sid)], [state.to_json_bytes(), state.offset, self.ttl_s])
            for sid, state in states.items()
        ]
        commands += [
            put([recs_key(self.project, sid)], [rec.to_json(), rec.offset, self.ttl_s]) for sid, rec in recs.items()
        ]
        commands += self._feature_rows(states, aggregates)
        await execute_with_scripts(self.client, commands, [self.put_if_newer])

    def _feature_rows(self, states: dict[str, SessionState], aggregates: AppliedBatch) -> list[Command]:
        row = self.features.row_commands
        commands: list[Command] = []
        for sid, state in states.items():
            commands += row("session_features", sid, session_row(state), state.last_ts_ms)
        for item, agg in aggregates.items.items():
            commands += row(
                "item_features",
                item,
                {**agg.windows, "trending_score": agg.trending_score, "conversion_rate": agg.conversion_rate},
                agg.trending_ref_ms,
            )
        for user, uagg in aggregates.users.items():
            top = uagg.top_categories()
            features = {
                "top_categories": [c for c, _ in top],
                "top_category_counts": [n for _, n in top],
                "purchase_history": uagg.purchases,
            }
            commands += row("user_features", user, features, aggregates.watermark_ms)
        return commands


def session_row(state: SessionState) -> dict[str, Any]:
    """The session_features row of a session's state (names and kinds in features/schema.py)."""
    return {
        "recent_items": state.items,
        "last_category": state.last_category,
        "cart_items": state.carts,
        "purchased_items": state.purchases,
        "event_count": state.events,
        "click_count": state.clicks,
        "cart_count": state.cart_adds,
        "purchase_count": state.purchase_count,
    }


class GrpcScorer:
    """Client of the scorer's batched Score RPC; every failure becomes ScorerError (the worker degrades).

    `address` may list several scorers (`host:port,host:port`) or name one DNS name with several addresses;
    calls are spread over them round robin.
    """

    def __init__(
        self,
        address: str,
        timeout_s: float,
        token: SecretStr | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = scorer_target(address)
        self.timeout_s = timeout_s
        self.metadata = bearer_metadata(token)
        self.credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def _ensure(self) -> Any:
        if self._stub is None:
            # created lazily: a grpc.aio channel binds to the event loop running at creation time
            options = scorer_channel_options()  # round robin over replicas, retries of UNAVAILABLE
            if self.credentials is not None:
                self._channel = grpc.aio.secure_channel(self.target, self.credentials, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=options)
            self._stub = recommender_pb2_grpc.RecommenderStub(self._channel)
        return self._stub

    async def score(self, sessions: Sequence[tuple[str, list[str], list[str], str]], k: int) -> Refresh:
        request = recommender_pb2.ScoreRequest(
            k=k,
            columnar=True,
            prebuilt=True,
            sessions=[
                recommender_pb2.SessionHistory(
                    session_id=sid, item_ids=items, exclude_item_ids=exclude, cause_event_id=cause
                )
                for sid, items, exclude, cause in sessions
            ],
        )
        try:
            reply = await self._ensure().Score(request, timeout=self.timeout_s, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:  # the client edge: turn transport errors into our own
            raise ScorerError(f"Score failed: {exc.code().name}: {exc.details()}") from exc
        lists = {r.session_id: read_scored_items(r) for r in reply.results}
        wire = {r.session_id: r.response_items for r in reply.results if r.response_items}
        return Refresh(lists, reply.model_version, wire)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def read_scored_items(result: Any) -> list[tuple[str, float]]:
    if result.items:  # a scorer that predates columnar answers
        return [(i.item_id, i.score) for i in result.items]
    return list(zip(result.item_ids, result.scores, strict=True))


def scorer_target(address: str) -> str:
    """A gRPC target for one or several scorers: "h:p" stays, "h1:p1,h2:p2" becomes an ipv4:/ipv6: list."""
    if "," not in address or ":///" in address or address.startswith(("ipv4:", "ipv6:", "dns:")):
        return address
    return "ipv4:" + address


DEAD_LETTER_HEADROOM_BYTES = 16_384  # headers and record-batch overhead of one dead letter
KEPT_KEY_BYTES = 1024  # of a key that has to be cut


class TopicDeadLetters:
    """Sends a bad record's original key and bytes to the dead-letter topic with `reason` and `detail` headers.

    `max_request_bytes` is the producer's largest request (`STREAMREC_STREAM_PRODUCER_MAX_REQUEST_BYTES`, 8 MiB, the
    dead-letter topic's `max.message.bytes`): far above anything the events topic takes with Kafka's defaults
    (1,048,588 bytes), so a letter is the record byte for byte. Only a record over that less 16 KiB of headroom,
    possible only where the events topic was configured larger, is cut as a last resort so that the letter still
    arrives and the batch goes on: its key to 1 KiB, its value to what fits, and a `truncated_from` header says how
    big they were (`key=<bytes> value=<bytes>`).
    """

    def __init__(self, topic: Any, max_request_bytes: int) -> None:
        self.topic = topic
        self.max_record_bytes = max_request_bytes - DEAD_LETTER_HEADROOM_BYTES

    async def send(self, record: RawRecord, reason: str, detail: str) -> None:
        log.warning("dead letter (%s) at partition %d offset %d: %s", reason, record.partition, record.offset, detail)
        headers = {"reason": reason.encode(), "detail": detail[:512].encode(errors="replace")}
        key, value = record.key, record.value or b""
        if len(key or b"") + len(value) > self.max_record_bytes:
            headers["truncated_from"] = f"key={len(key or b'')} value={len(value)}".encode()
            key = key[:KEPT_KEY_BYTES] if key else key
            value = value[: self.max_record_bytes - len(key or b"")]
        await self.topic.send(key=key, value=value, headers=headers)
