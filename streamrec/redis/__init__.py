"""streamrec's one Redis layer: URL parsing, the engines' asyncio client, its blocking read, redis-py for tools.

    target = RedisTarget.from_url(url)    # one parser: database, ACL user, TLS mean the same to every client
    client = FastRedis(target)            # the engines' client: pipelines, scripts, fail-fast reconnects
    client = connect(url)                 # FastRedis, or ClusterRedis for redis+cluster://h1:p1,h2:p2/0
    client.blocking_reader(0.002)         # the scorer's in-place read of a lone request
    sync_client(target)                   # redis-py (hiredis) for tools, tests and scripts that block
    sync_cluster_client(cluster_target)   # redis-py's RedisCluster, the same for a cluster

Errors are in streamrec's tree: RedisError, with RedisUnavailable (no connection) and RedisReplyError.
"""

from streamrec.errors import RedisError, RedisReplyError, RedisUnavailable
from streamrec.redis.blocking import BlockingReader
from streamrec.redis.client import FastRedis, RedisClient, Script, execute_with_scripts
from streamrec.redis.cluster import ClusterRedis
from streamrec.redis.connect import connect
from streamrec.redis.resp import Command, pack
from streamrec.redis.sync import execute_sync, sync_client, sync_cluster_client
from streamrec.redis.target import ClusterTarget, RedisTarget, is_cluster_url, redact_url

__all__ = [
    "BlockingReader",
    "ClusterRedis",
    "ClusterTarget",
    "Command",
    "FastRedis",
    "RedisClient",
    "RedisError",
    "RedisReplyError",
    "RedisTarget",
    "RedisUnavailable",
    "Script",
    "connect",
    "execute_sync",
    "execute_with_scripts",
    "is_cluster_url",
    "pack",
    "redact_url",
    "sync_client",
    "sync_cluster_client",
]
