"""streamrec's one Redis layer: URL parsing, the engines' asyncio client, its blocking read, redis-py for tools.

    target = RedisTarget.from_url(url)    # one parser: database, ACL user, TLS mean the same to every client
    client = FastRedis(target)            # the engines' client: pipelines, scripts, fail-fast reconnects
    client.blocking_reader(0.002)         # the scorer's in-place read of a lone request
    sync_client(target)                   # redis-py (hiredis) for tools, tests and scripts that block

Errors are in streamrec's tree: RedisError, with RedisUnavailable (no connection) and RedisReplyError.
"""

from streamrec.errors import RedisError, RedisReplyError, RedisUnavailable
from streamrec.redis.blocking import BlockingReader
from streamrec.redis.client import FastRedis, Script, execute_with_scripts
from streamrec.redis.resp import Command, pack
from streamrec.redis.sync import execute_sync, sync_client
from streamrec.redis.target import RedisTarget, redact_url

__all__ = [
    "BlockingReader",
    "Command",
    "FastRedis",
    "RedisError",
    "RedisReplyError",
    "RedisTarget",
    "RedisUnavailable",
    "Script",
    "execute_sync",
    "execute_with_scripts",
    "pack",
    "redact_url",
    "sync_client",
]
