"""A lone page view reads its session from Redis with one blocking call, without leaving the event loop.

Awaiting the read suspends the handler, and grpc.aio then needs more loop iterations (and its poller thread) to
resume it and send the answer, which costs a lone client a sizeable part of its latency (docs/benchmarks.md,
"A lone request reads in place"). While other calls are in flight the loop must stay free for them, so only a
request that is alone reads here; the others await the asynchronous client.

A blocking read must never stall the server: it waits at most `timeout_s` (a few milliseconds), and on any
trouble (timeout, closed connection, error reply) the socket is dropped, the caller reads asynchronously within
its own budget as usual, and a new socket is made later on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time

import hiredis

from streamrec.errors import RedisReplyError
from streamrec.redis.resp import Command, pack
from streamrec.redis.target import RedisTarget

log = logging.getLogger(__name__)
RECV_BYTES = 65536


class BlockingReader:
    def __init__(
        self,
        host: str,
        port: int,
        setup: list[Command],
        timeout_s: float,
        retry_after_s: float = 1.0,
        connect_timeout_s: float = 0.5,
    ) -> None:
        self.address = (host, port)
        self.setup = setup  # AUTH and SELECT, as the asynchronous client sends them
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.connect_timeout_s = connect_timeout_s
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._connecting = threading.Lock()
        self._next_attempt = 0.0
        self._closed = False
        self.reads = 0  # answered here
        self.dropped = 0  # sockets given up after a failed read

    @classmethod
    def for_target(cls, target: RedisTarget, timeout_s: float) -> BlockingReader | None:
        """One for `target`; None where it cannot be (TLS: a blocking TLS read is not short; a zero timeout)."""
        if target.tls or timeout_s <= 0:
            return None
        return cls(target.host, target.port, list(target.setup_commands()), timeout_s)

    def mget(self, keys: tuple[str, ...]) -> list[bytes | None] | None:
        """The values, or None when this path cannot answer now (the caller then reads asynchronously)."""
        sock = self._sock
        if sock is None:
            self._connect_later()
            return None
        try:
            reply = _call(sock, self._reader, pack(("MGET", *keys)))
        except (OSError, RedisReplyError) as exc:  # timeout, reset, closed, an error reply
            self._drop(sock, exc)
            return None
        self.reads += 1
        return reply  # type: ignore[return-value]  # an MGET's reply is a list of values

    def _drop(self, sock: socket.socket, exc: Exception) -> None:
        # a reply may still be on its way: the socket and the parser's state go together
        self._sock = None
        self._reader = hiredis.Reader()
        self.dropped += 1
        self._next_attempt = time.monotonic() + self.retry_after_s
        with contextlib.suppress(OSError):
            sock.close()
        log.warning("blocking redis read failed (%r); reading asynchronously for now", exc)

    def _connect_later(self) -> None:
        if self._closed or time.monotonic() < self._next_attempt or self._connecting.locked():
            return
        self._next_attempt = time.monotonic() + self.retry_after_s
        asyncio.get_running_loop().run_in_executor(None, self._connect)

    def _connect(self) -> None:
        if not self._connecting.acquire(blocking=False):
            return
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection(self.address, timeout=self.connect_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = hiredis.Reader()
            for command in self.setup:
                _call(sock, reader, pack(command))
            sock.settimeout(self.timeout_s)
            if not self._closed:  # the scorer may have stopped meanwhile
                self._reader, self._sock = reader, sock  # the parser first: the loop thread reads `_sock` alone
                sock = None
        except (OSError, RedisReplyError) as exc:
            log.debug("blocking redis reader not connected: %r", exc)
        finally:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
            self._connecting.release()

    def close(self) -> None:
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _call(sock: socket.socket, reader: hiredis.Reader, command: bytes) -> object:
    """Send one command and wait for its reply (an error reply raises RedisReplyError, as in FastRedis)."""
    sock.sendall(command)
    while (reply := reader.gets()) is False:
        data = sock.recv(RECV_BYTES)
        if not data:
            raise ConnectionResetError("redis closed the connection")
        reader.feed(data)
    if isinstance(reply, hiredis.ReplyError):
        raise RedisReplyError(str(reply))
    return reply
