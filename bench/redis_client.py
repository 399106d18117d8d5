"""Benchmark: the engines' Redis client (streamrec.redis.FastRedis) vs redis-py's asyncio client with hiredis.

Both talk to one real redis-server in the same run, alternating, on the two shapes the engines send: the
scorer's page view (one MGET of a session's state and list, awaited alone) and the worker's batch (a pipeline
of HSET + EXPIRE per row, a thousand commands). Prints one JSON line: microseconds per call for each client
and `ratio` = redis-py's time over ours (above 1: ours is faster), per shape.

    .venv/bin/python -m streamrec.bench.redis_client [--calls 5000] [--pipelines 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.utils import HIREDIS_AVAILABLE

from streamrec.devstack.localstack import LocalStack
from streamrec.redis import Command, FastRedis

STATE = b'{"items":["' + b'","'.join(b"item-%d" % i for i in range(50)) + b'"]}'  # a 50-item session state
ROWS_PER_PIPELINE = 500  # HSET + EXPIRE each: 1,000 commands, a worker batch


def _row_commands(n: int) -> list[Command]:
    commands: list[Command] = []
    for i in range(n):
        key = b"bench:row:%d" % i
        commands.append(("HSET", key, *[part for f in range(10) for part in (b"f%d" % f, b"%d" % (i * f))]))
        commands.append(("EXPIRE", key, 3600))
    return commands


async def _per_call_us(call: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(min(n, 200)):  # warm the connection and the interpreter's caches
        await call()
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def _measure(url: str, calls: int, pipelines: int, rounds: int) -> dict[str, Any]:
    fast = FastRedis(url)
    slow = aioredis.Redis.from_url(url, max_connections=1)  # one connection, as ours; hiredis when installed
    keys = ("bench:state", "bench:recs")
    await fast.execute([("SET", keys[0], STATE), ("SET", keys[1], STATE[:400])])
    rows = _row_commands(ROWS_PER_PIPELINE)

    async def slow_pipeline() -> None:
        async with slow.pipeline(transaction=False) as pipe:
            for command in rows:
                pipe.execute_command(*command)
            await pipe.execute()

    figures: dict[str, list[float]] = {"mget_fast": [], "mget_redis_py": [], "pipe_fast": [], "pipe_redis_py": []}
    for _ in range(rounds):  # alternate, so drift on a shared machine hits both alike
        figures["mget_fast"].append(await _per_call_us(lambda: fast.mget(*keys), calls))
        figures["mget_redis_py"].append(await _per_call_us(lambda: slow.mget(keys), calls))
        figures["pipe_fast"].append(await _per_call_us(lambda: fast.execute(rows), pipelines))
        figures["pipe_redis_py"].append(await _per_call_us(slow_pipeline, pipelines))
    await fast.aclose()
    await slow.aclose()
    med = {name: statistics.median(values) for name, values in figures.items()}
    return {
        "figure": "Redis round trip, us per call (median of rounds): FastRedis vs redis-py asyncio",
        "hiredis": HIREDIS_AVAILABLE,
        "mget_us": round(med["mget_fast"], 1),
        "mget_redis_py_us": round(med["mget_redis_py"], 1),
        "mget_ratio": round(med["mget_redis_py"] / med["mget_fast"], 2),
        "pipeline_commands": len(rows),
        "pipeline_us": round(med["pipe_fast"], 1),
        "pipeline_redis_py_us": round(med["pipe_redis_py"], 1),
        "pipeline_ratio": round(med["pipe_redis_py"] / med["pipe_fast"], 2),
        "calls": calls,
        "pipelines": pipelines,
        "rounds": rounds,
    }


def run_redis_client(calls: int = 5000, pipelines: int = 40, rounds: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(state_dir=Path(tmp)) as stack:
        return asyncio.run(_measure(stack.start_redis(), calls, pipelines, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streamrec.bench.redis_client", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--pipelines", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run_redis_client(args.calls, args.pipelines, args.rounds)))


if __name__ == "__main__":
    main()
