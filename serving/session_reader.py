"""Reads a session's state and refreshed list with one MGET, within the caller's time budget."""

from __future__ import annotations

import asyncio
import logging

from streamrec.features.session_store import Recommendations, SessionState, recs_key, session_key
from streamrec.redis import BlockingReader, RedisClient, RedisError
from streamrec.serving import metrics

log = logging.getLogger(__name__)
READ_IN_PLACE = metrics.SESSION_READS.labels("in_place")
READ_AWAITED = metrics.SESSION_READS.labels("awaited")


class SessionReader:
    """Redis trouble (down, slow past the budget, an error reply such as NOAUTH or LOADING) reads as "no state"
    plus a log line and a gauge, never an error to the storefront: the answer then comes from popularity with
    fallback=true."""

    def __init__(self, client: RedisClient, project: str, blocking: BlockingReader | None = None) -> None:
        self.client = client
        self.project = project
        self.blocking = blocking  # for a request that is alone (streamrec/redis/blocking.py)
        self.redis_ok = True

    async def read(self, session_id: str, timeout_s: float, alone: bool = False) -> Read:
        keys = (session_key(self.project, session_id), recs_key(self.project, session_id))
        # in place only when the blocking read's own limit fits in the caller's budget (a short deadline awaits)
        if alone and self.blocking is not None and self.redis_ok and timeout_s >= self.blocking.timeout_s:
            values = self.blocking.mget(keys)
            if values is not None:
                READ_IN_PLACE.inc()
                return _decode(*values)
        READ_AWAITED.inc()
        try:
            async with asyncio.timeout(max(timeout_s, 0.001)):  # no extra task, unlike wait_for
                raw_state, raw_recs = await self.client.mget(*keys)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.redis_ok:
                log.warning("redis unavailable, answering from popularity: %r", exc)
            self.redis_ok = False
            metrics.REDIS_UP.set(0)
            return None, None, False
        if not self.redis_ok:
            log.info("redis readable again")
            self.redis_ok = True
            metrics.REDIS_UP.set(1)
        return _decode(raw_state, raw_recs)

    async def close(self) -> None:
        if self.blocking is not None:
            self.blocking.close()
        await self.client.aclose()


Read = tuple[SessionState | None, Recommendations | None, bool]  # state, refreshed list, whether Redis answered


def _decode(raw_state: bytes | None, raw_recs: bytes | None) -> Read:
    state = SessionState.from_json(raw_state) if raw_state else None
    recs = Recommendations.from_json(raw_recs) if raw_recs else None
    return state, recs, True
