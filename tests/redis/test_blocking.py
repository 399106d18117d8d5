"""A lone request's blocking read against a real redis-server: same answers, and trouble never stalls or breaks it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis

from streamrec.devstack.localstack import LocalStack
from streamrec.features.session_store import SessionState, session_key
from streamrec.redis import BlockingReader, FastRedis
from streamrec.serving.session_reader import SessionReader

PROJECT = "t"


def _reader(url: str, timeout_s: float = 0.005) -> SessionReader:
    client = FastRedis(url, retry_after_s=0.05)
    blocking = client.blocking_reader(timeout_s)
    assert blocking is not None
    blocking.retry_after_s = 0.05
    return SessionReader(client, PROJECT, blocking)


async def _connected(reader: SessionReader) -> BlockingReader:
    """The first read starts the connection on a worker thread; wait until it is there."""
    assert reader.blocking is not None
    await reader.read("warm-up", 0.05, alone=True)
    for _ in range(200):
        if reader.blocking._sock is not None:
            break
        await asyncio.sleep(0.01)
    return reader.blocking


async def test_alone_reads_in_place_with_auth_and_database_and_answers_as_the_async_path(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        url = stack.start_redis(password="secret").replace("/0", "/2")
        state = SessionState(items=["i1", "i2"], last_event_id="e2", offset=7)
        redis.Redis.from_url(url).set(session_key(PROJECT, "s1"), state.to_json())
        reader = _reader(url)
        blocking = await _connected(reader)
        alone = await reader.read("s1", 0.05, alone=True)
        assert blocking.reads == 1 and blocking.dropped == 0
        assert alone == await reader.read("s1", 0.05, alone=False)
        assert alone[0] is not None and alone[0].items == ["i1", "i2"] and alone[2] is True
        assert blocking.reads == 1  # a request that is not alone awaits the asynchronous client
        await reader.read("s1", 0.001, alone=True)
        assert blocking.reads == 1  # nor does one whose budget is shorter than the blocking read's limit
        await reader.close()


async def test_a_paused_redis_costs_one_short_wait_then_reads_go_async_until_it_is_back(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        url = stack.start_redis()
        redis.Redis.from_url(url).set(session_key(PROJECT, "s1"), SessionState(items=["i1"]).to_json())
        reader = _reader(url)
        blocking = await _connected(reader)
        redis.Redis.from_url(url).execute_command("CLIENT", "PAUSE", 400, "ALL")
        state, _, redis_ok = await reader.read("s1", 0.05, alone=True)
        # the blocking read gave up and dropped its socket; the async read then ran out of the request's budget
        assert blocking.dropped == 1 and blocking.reads == 0
        assert state is None and redis_ok is False
        await asyncio.sleep(0.5)  # the pause is over
        for _ in range(100):  # the async read recovers first; the blocking socket is made again later
            state, _, redis_ok = await reader.read("s1", 0.05, alone=True)
            if blocking.reads:
                break
            await asyncio.sleep(0.01)
        assert blocking.reads >= 1 and state is not None and state.items == ["i1"] and redis_ok
        await reader.close()


async def test_redis_down_answers_without_state_and_the_reader_comes_back(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        url = stack.start_redis(appendonly=True)
        redis.Redis.from_url(url).set(session_key(PROJECT, "s1"), SessionState(items=["i1"]).to_json())
        reader = _reader(url)
        blocking = await _connected(reader)
        stack.stop_service("redis")
        assert await reader.read("s1", 0.05, alone=True) == (None, None, False)
        assert blocking.dropped == 1
        stack.restart_redis(url)
        for _ in range(200):
            state, _, redis_ok = await reader.read("s1", 0.05, alone=True)
            if blocking.reads:
                break
            await asyncio.sleep(0.01)
        assert blocking.reads >= 1 and state is not None and redis_ok
        await reader.close()


def test_tls_and_a_zero_timeout_turn_the_blocking_path_off() -> None:
    assert FastRedis("rediss://127.0.0.1:6390").blocking_reader(0.003) is None
    assert FastRedis("redis://127.0.0.1:6390").blocking_reader(0.0) is None
