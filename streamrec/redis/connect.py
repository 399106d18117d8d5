"""The client a Redis URL means: `FastRedis` for one server, `ClusterRedis` for a redis+cluster:// URL."""

from __future__ import annotations

from streamrec.redis.client import FastRedis, RedisClient
from streamrec.redis.cluster import ClusterRedis
from streamrec.redis.target import ClusterTarget, RedisTarget, is_cluster_url


def connect(
    url: str | RedisTarget | ClusterTarget,
    connect_timeout_s: float = 0.5,
    retry_after_s: float = 0.5,
    replicated_writes: int = 0,
) -> RedisClient:
    """A client of `url` (nothing is connected before the first call). `replicated_writes` matters on a cluster
    only: writes wait for up to that many replicas of their primary (see streamrec/redis/cluster.py)."""
    if isinstance(url, ClusterTarget) or (isinstance(url, str) and is_cluster_url(url)):
        return ClusterRedis(url, connect_timeout_s, retry_after_s, replicated_writes)
    return FastRedis(url, connect_timeout_s, retry_after_s)
