"""The asyncio Redis client of the engines: one pipelined connection, hiredis parsing, FIFO replies.

Built for the hot paths: the scorer makes one MGET per page view and the worker a few pipelines of about a
thousand commands per batch, and this client spends tens of microseconds of Python on each round trip where
redis-py's asyncio client spends several hundred (docs/benchmarks.md, "Redis client"). It speaks to the
`RedisTarget` of a URL (credentials, database, TLS), runs pipelines (`execute`) and Lua scripts by sha with a
reload on NOSCRIPT, and reconnects on the next call after a failure, failing fast for `retry_after_s`
meanwhile so an outage costs callers no connect timeouts. An error reply raises RedisReplyError; no connection
raises RedisUnavailable (both RedisError, in streamrec's error tree). `blocking_reader` gives the blocking
read mode of the same target (streamrec/redis/blocking.py).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from typing import Protocol

import hiredis

from streamrec.errors import RedisReplyError, RedisUnavailable
from streamrec.redis.blocking import BlockingReader
from streamrec.redis.resp import Command, pack
from streamrec.redis.target import RedisTarget


class _Pending:
    """One pipeline's replies as they arrive; its future is resolved with all of them at once."""

    __slots__ = ("expected", "future", "replies")

    def __init__(self, future: asyncio.Future[list[object]], expected: int) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[object] = []


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        # one entry per pipeline, not per command: a worker batch sends about a thousand commands, and a future
        # (made, resolved, awaited) per command cost more than encoding them
        self.waiters: collections.deque[_Pending] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            pending = self.waiters[0]
            pending.replies.append(reply)  # error replies are values here; callers decide (see raise_reply_errors)
            if len(pending.replies) == pending.expected:
                self.waiters.popleft()
                if not pending.future.done():  # the caller may have timed out; the replies were consumed in order
                    pending.future.set_result(pending.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiters:
            pending = self.waiters.popleft()
            if not pending.future.done():
                pending.future.set_exception(RedisUnavailable(f"redis connection lost: {exc!r}"))

    def send(self, commands: list[Command]) -> asyncio.Future[list[object]]:
        """Write every command in one go; the future gets their replies, in order."""
        if self.transport is None or self.lost:
            raise RedisUnavailable("redis connection is closed")
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        self.waiters.append(_Pending(future, len(commands)))
        self.transport.write(b"".join([pack(command) for command in commands]))
        return future


class RedisClient(Protocol):
    """What the engines ask of Redis: `FastRedis` for one server, `ClusterRedis` for a Redis Cluster."""

    is_cluster: bool

    @property
    def round_trips(self) -> int:
        """Pipelines sent (to each node, on a cluster): what the caller's work costs in waits on Redis."""

    async def execute(self, commands: list[Command], raise_errors: bool = True) -> list[object]: ...

    async def get(self, key: str) -> bytes | None: ...

    async def mget(self, *keys: str) -> list[bytes | None]: ...

    def blocking_reader(self, timeout_s: float) -> BlockingReader | None: ...

    async def aclose(self) -> None: ...


class FastRedis:
    is_cluster = False

    def __init__(self, target: str | RedisTarget, connect_timeout_s: float = 0.5, retry_after_s: float = 0.5) -> None:
        self.target = target if isinstance(target, RedisTarget) else RedisTarget.from_url(target)
        self.ssl = self.target.ssl_context()
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._failed_at = 0.0
        self.round_trips = 0

    async def _connection(self) -> _Protocol:
        if self._protocol is not None and not self._protocol.lost:
            return self._protocol
        if time.monotonic() - self._failed_at < self.retry_after_s:
            raise RedisUnavailable(f"redis at {self.target.address} unavailable (recent connection failure)")
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol
            try:
                self._protocol = await asyncio.wait_for(self._connect(), self.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                raise RedisUnavailable(f"cannot connect to redis at {self.target.address}: {exc!r}") from None
            except RedisReplyError:  # AUTH or SELECT refused: as unusable as a refused connection, and as loud
                self._failed_at = time.monotonic()
                raise
            return self._protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.target.host, self.target.port, ssl=self.ssl)
        setup: list[Command] = list(self.target.setup_commands())
        if setup:
            try:
                raise_reply_errors(await protocol.send(setup))
            except RedisReplyError:
                if protocol.transport is not None:
                    protocol.transport.close()
                raise
        return protocol

    async def execute(self, commands: list[Command], raise_errors: bool = True) -> list[object]:
        """Send a pipeline of commands in one write and return the replies in order."""
        if not commands:
            return []
        protocol = await self._connection()
        self.round_trips += 1
        replies = await protocol.send(commands)
        return raise_reply_errors(replies) if raise_errors else replies

    async def get(self, key: str) -> bytes | None:
        [reply] = await self.execute([("GET", key)])
        return reply  # type: ignore[return-value]

    async def mget(self, *keys: str) -> list[bytes | None]:
        [reply] = await self.execute([("MGET", *keys)])
        return reply  # type: ignore[return-value]

    def blocking_reader(self, timeout_s: float) -> BlockingReader | None:
        """The blocking read mode for the same target; None where it cannot be (TLS, or a zero timeout)."""
        return BlockingReader.for_target(self.target, timeout_s)

    async def aclose(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()


def raise_reply_errors(replies: list[object]) -> list[object]:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise RedisReplyError(str(reply))
    return replies


class Script:
    """A Lua script called by sha; loaded on the first NOSCRIPT (e.g. after a Redis restart), then retried."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: list[str], args: list[bytes | str | int | float]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self, client: RedisClient) -> None:
        await client.execute([("SCRIPT", "LOAD", self.source)])


async def execute_with_scripts(client: RedisClient, commands: list[Command], scripts: list[Script]) -> list[object]:
    """Run a pipeline that calls scripts by sha; if Redis (or a node of a cluster) has forgotten one, load them all
    and run again the commands that were refused, only those: the others are done."""
    replies = await client.execute(commands, raise_errors=False)
    refused = [i for i, r in enumerate(replies) if isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT")]
    if refused:
        for script in scripts:
            await script.load(client)
        again = await client.execute([commands[i] for i in refused], raise_errors=False)
        for i, reply in zip(refused, again, strict=True):
            replies[i] = reply
    return raise_reply_errors(replies)
