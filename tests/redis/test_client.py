"""The hot-path Redis client against a real redis-server: AUTH, SELECT, pipelining, scripts, errors, outages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import redis

from streamrec.devstack.localstack import LocalStack
from streamrec.errors import ConfigError
from streamrec.redis import FastRedis, RedisReplyError, Script, execute_with_scripts, pack


async def test_mget_with_password_and_database_and_many_concurrent_calls(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        url = stack.start_redis(password="pa:ss w@rd".replace(" ", "")).replace("/0", "/3")
        sync = redis.Redis.from_url(url)
        sync.set("a", b"1")
        sync.set("b", b"\x00binary\xff")
        reader = FastRedis(url)
        assert await reader.mget("a", "missing", "b") == [b"1", None, b"\x00binary\xff"]
        replies = await asyncio.gather(*(reader.mget("a", "b") for _ in range(200)))  # pipelined, in order
        assert all(r == [b"1", b"\x00binary\xff"] for r in replies)
        await reader.aclose()
        sync.close()


async def test_an_outage_fails_fast_and_the_reader_reconnects_after_it(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        url = stack.start_redis(appendonly=True)
        redis.Redis.from_url(url).set("k", b"v")
        reader = FastRedis(url, retry_after_s=0.2)
        assert await reader.mget("k") == [b"v"]
        stack.stop_service("redis")
        with pytest.raises(ConnectionError):
            await reader.mget("k")
        with pytest.raises(ConnectionError, match=r"recent connection failure|cannot connect|lost|closed"):
            await reader.mget("k")
        stack.restart_redis(url)
        await asyncio.sleep(0.3)
        assert await reader.mget("k") == [b"v"]
        await reader.aclose()


def test_bad_urls_are_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        FastRedis("http://localhost:6379")


async def test_pipelines_scripts_and_error_replies(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        client = FastRedis(stack.start_redis())
        replies = await client.execute([("SET", "n", 1), ("INCRBY", "n", 41), ("HSET", "h", "f", 2.5), ("GET", "n")])
        assert replies == [b"OK", 42, 1, b"42"]
        script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        # never loaded: the first call meets NOSCRIPT, loads and retries
        assert await execute_with_scripts(client, [script.command(["n"], [8])], [script]) == [50]
        with pytest.raises(RedisReplyError, match="WRONGTYPE"):
            await client.execute([("INCR", "h")])
        await client.aclose()


def test_commands_are_encoded_in_resp_whatever_the_argument_types() -> None:
    assert pack(("SET", "k", b"v", 7, 0.1 + 0.2)) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\n7\r\n$19\r\n0.30000000000000004\r\n"
    )
    # types hiredis refuses go through the Python encoder, not an error
    assert pack(("EXPIRE", "k", np.int64(30), True)) == b"*4\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n30\r\n$4\r\nTrue\r\n"
