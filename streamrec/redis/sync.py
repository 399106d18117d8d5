"""redis-py clients for code that blocks (tools, tests, scripts), built from the same RedisTarget as the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.cluster import ClusterNode, RedisCluster

from streamrec.redis.resp import Command
from streamrec.redis.target import ClusterTarget, RedisTarget, is_cluster_url


def sync_client(target: str | RedisTarget, timeout_s: float | None = None) -> redis.Redis:
    """A redis-py client (hiredis parser, binary values) for `target`; `timeout_s` bounds connect and reads.

    For a redis+cluster:// URL it is redis-py's RedisCluster, whose MGET is split by slot (`mget_nonatomic`), so
    the tools' GET, MGET, pipelines and SCAN work on either without knowing which they have."""
    if isinstance(target, str) and is_cluster_url(target):
        return cast(redis.Redis, sync_cluster_client(target, timeout_s))
    target = target if isinstance(target, RedisTarget) else RedisTarget.from_url(target)
    return redis.Redis(**target.redis_py_options(), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


class _SplitMgetCluster(RedisCluster):
    def mget(self, keys: Any, *args: Any) -> list[Any]:  # type: ignore[override]
        return self.mget_nonatomic(keys, *args)


def sync_cluster_client(target: str | ClusterTarget, timeout_s: float | None = None) -> RedisCluster:
    """redis-py's Redis Cluster client for a redis+cluster:// URL (tools and tests); MGET may span slots."""
    target = target if isinstance(target, ClusterTarget) else ClusterTarget.from_url(target)
    options = target.seeds[0].redis_py_options()
    del options["host"], options["port"], options["db"]
    nodes = [ClusterNode(seed.host, seed.port) for seed in target.seeds]
    return _SplitMgetCluster(startup_nodes=nodes, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **options)


def execute_sync(client: redis.Redis, commands: Sequence[Command]) -> list[object]:
    """Run commands (as streamrec.redis produces them) in one pipelined round trip of a redis-py client."""
    with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()
