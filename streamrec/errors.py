"""The one exception tree of streamrec; every package raises from here.

StreamrecError
├── ConfigError            settings that cannot work (bad address, missing file)
├── StackError             a local service (broker, redis-server, worker, scorer) failed to start or stop
├── ArtifactError          a model artifact is missing, unreadable or inconsistent
│   └── ChecksumMismatch   a file's sha256 differs from its manifest entry
├── InvalidEvent           an event failed decoding or validation; `.reason` is the dead-letter reason
├── DataError              an input data file cannot be read into canonical events
├── ScorerError            the scorer cannot answer (no model loaded, runtime failure)
└── RedisError             Redis did not do what was asked (streamrec.redis)
    ├── RedisUnavailable   no connection: refused, lost, timed out, failing fast after a failure
    └── RedisReplyError    Redis answered with an error; `.code` is its first word (NOAUTH, LOADING, ...)
"""

from __future__ import annotations


class StreamrecError(Exception):
    """Base of every error streamrec raises on purpose."""


class ConfigError(StreamrecError):
    """Settings that cannot work."""


class StackError(StreamrecError):
    """A local service failed to start or stop."""


class ArtifactError(StreamrecError):
    """A model artifact is missing, unreadable or inconsistent."""


class ChecksumMismatch(ArtifactError):
    """A file of an artifact does not match the checksum in its manifest."""


class InvalidEvent(StreamrecError):
    """An event failed decoding or validation."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DataError(StreamrecError):
    """An input data file cannot be read into canonical events."""


class ScorerError(StreamrecError):
    """The scorer cannot answer."""


class RedisError(StreamrecError):
    """Redis did not do what was asked."""


class RedisUnavailable(RedisError, ConnectionError):
    """No connection to Redis. Also a ConnectionError (an OSError), as a socket failure would be."""


class RedisReplyError(RedisError):
    """Redis answered a command with an error reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message.split(" ", 1)[0]  # NOAUTH, WRONGPASS, NOPERM, LOADING, NOSCRIPT, WRONGTYPE, ...
