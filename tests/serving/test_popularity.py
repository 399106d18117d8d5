"""Cold-start lists: the stream's trending items first, then training popularity; a snapshot without Redis."""

from __future__ import annotations

import redis

from streamrec.devstack.localstack import free_port
from streamrec.redis import FastRedis
from streamrec.serving.popularity import PopularitySource


async def test_a_young_stream_trends_few_items_and_popularity_fills_the_rest(redis_url: str, project: str) -> None:
    redis.Redis.from_url(redis_url).zadd(f"{project}:agg:trending", {"hot": 5.0, "warm": 1.0})
    source = PopularitySource(FastRedis(redis_url), project, ["p1", "warm", "p2"])
    assert not source.from_stream and source.items == ["p1", "warm", "p2"]
    await source.refresh()
    assert source.from_stream and source.items == ["hot", "warm", "p1", "p2"]
    await source.client.aclose()


async def test_without_redis_the_last_snapshot_keeps_serving(project: str) -> None:
    source = PopularitySource(FastRedis(f"redis://127.0.0.1:{free_port()}/0"), project, ["p1", "p2"])
    await source.refresh()
    assert not source.redis_ok and source.items == ["p1", "p2"]
    await source.client.aclose()
