"""A minimal pipelined asyncio Redis client for hot paths: one connection, hiredis parsing, FIFO replies.

redis-py's asyncio client spends about 0.2-0.7 ms of Python per command here; the scorer needs one MGET per
page view and the worker a handful of pipelined commands per batch, and this client does each round trip in
tens of microseconds. It supports redis:// and rediss:// URLs with credentials (AUTH, SELECT), pipelines
(`execute`), Lua scripts by sha with a fallback on NOSCRIPT, and reconnects on the next call after a failure
(failing fast for `retry_after_s` meanwhile, so an outage costs callers no connect timeouts). Error replies
raise `RedisReplyError`; connection trouble raises `ConnectionError`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
from urllib.parse import unquote, urlparse

import hiredis

from streamrec.errors import ConfigError

Command = tuple[bytes | str | int | float, ...]


class RedisReplyError(Exception):
    """Redis answered a command with an error."""


def _encode(arg: bytes | str | int | float) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    return repr(arg).encode() if isinstance(arg, float) else str(arg).encode()


def pack(command: Command) -> bytes:
    """One command in RESP. hiredis does it in C (half the cost); it refuses other types than str, int, float
    and bytes (bool, numpy integers), which are then encoded here."""
    try:
        return hiredis.pack_command(command)  # type: ignore[arg-type]  # its stub types the tuple as one element
    except TypeError:
        args = [_encode(a) for a in command]
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)


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
            pending.replies.append(reply)  # error replies are values here; callers decide (see _raise_errors)
            if len(pending.replies) == pending.expected:
                self.waiters.popleft()
                if not pending.future.done():  # the caller may have timed out; the replies were consumed in order
                    pending.future.set_result(pending.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiters:
            pending = self.waiters.popleft()
            if not pending.future.done():
                pending.future.set_exception(ConnectionError(f"redis connection lost: {exc!r}"))

    def send(self, commands: list[Command]) -> asyncio.Future[list[object]]:
        """Write every command in one go; the future gets their replies, in order."""
        if self.transport is None or self.lost:
            raise ConnectionError("redis connection is closed")
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        self.waiters.append(_Pending(future, len(commands)))
        self.transport.write(b"".join([pack(command) for command in commands]))
        return future


class FastRedis:
    def __init__(self, url: str, connect_timeout_s: float = 0.5, retry_after_s: float = 0.5) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ConfigError(f"unsupported Redis URL scheme {parsed.scheme!r}")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.db = int(parsed.path.lstrip("/") or 0)
        self.ssl = ssl.create_default_context() if parsed.scheme == "rediss" else None
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._failed_at = 0.0

    async def _connection(self) -> _Protocol:
        if self._protocol is not None and not self._protocol.lost:
            return self._protocol
        if time.monotonic() - self._failed_at < self.retry_after_s:
            raise ConnectionError("redis unavailable (recent connection failure)")
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol
            try:
                self._protocol = await asyncio.wait_for(self._connect(), self.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                raise ConnectionError(f"cannot connect to redis at {self.host}:{self.port}: {exc!r}") from None
            return self._protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port, ssl=self.ssl)
        setup = self.setup_commands()
        if setup:
            _raise_errors(await protocol.send(setup))
        return protocol

    def setup_commands(self) -> list[Command]:
        """What a new connection sends first: AUTH with the URL's credentials, SELECT of its database."""
        setup: list[Command] = []
        if self.password is not None:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        return setup

    async def execute(self, commands: list[Command], raise_errors: bool = True) -> list[object]:
        """Send a pipeline of commands in one write and return the replies in order."""
        if not commands:
            return []
        protocol = await self._connection()
        replies = await protocol.send(commands)
        return _raise_errors(replies) if raise_errors else replies

    async def mget(self, *keys: str) -> list[bytes | None]:
        [reply] = await self.execute([("MGET", *keys)])
        return reply  # type: ignore[return-value]

    async def aclose(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()


def _raise_errors(replies: list[object]) -> list[object]:
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

    async def load(self, client: FastRedis) -> None:
        await client.execute([("SCRIPT", "LOAD", self.source)])


async def execute_with_scripts(client: FastRedis, commands: list[Command], scripts: list[Script]) -> list[object]:
    """Run a pipeline that calls scripts by sha; if Redis has forgotten one, load them all and run it again."""
    replies = await client.execute(commands, raise_errors=False)
    if any(isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT") for r in replies):
        for script in scripts:
            await script.load(client)
        replies = await client.execute(commands, raise_errors=False)
    return _raise_errors(replies)
