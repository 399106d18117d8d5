"""redis-py clients for code that blocks (tools, tests, scripts), built from the same RedisTarget as the rest."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from streamrec.redis.resp import Command
from streamrec.redis.target import RedisTarget


def sync_client(target: str | RedisTarget, timeout_s: float | None = None) -> redis.Redis:
    """A redis-py client (hiredis parser, binary values) for `target`; `timeout_s` bounds connect and reads."""
    target = target if isinstance(target, RedisTarget) else RedisTarget.from_url(target)
    return redis.Redis(**target.redis_py_options(), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def execute_sync(client: redis.Redis, commands: Sequence[Command]) -> list[object]:
    """Run commands (as streamrec.redis produces them) in one pipelined round trip of a redis-py client."""
    with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()
