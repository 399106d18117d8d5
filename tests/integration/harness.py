"""Helpers of the integration tests: a running set of services, and ground truth against what Redis holds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack, Service
from streamrec.events import CanonicalEvent
from streamrec.features.aggregate_layout import item_key, shard_count
from streamrec.features.session_store import SessionState, session_key
from streamrec.redis import is_cluster_url, sync_cluster_client

AnyRedis = redis.Redis | RedisCluster

KIND_CODES = {"view": "v", "click": "c", "add_to_cart": "a", "purchase": "p"}


@dataclass
class Services:
    stack: LocalStack
    kafka: str
    redis_url: str
    env: dict[str, str]
    project: str

    def start_worker(self, name: str) -> Service:
        env = {**self.env, "STREAMREC_STREAM_DATA_DIR": str(self.stack.state_dir / name)}
        return self.stack.python_module(name, ["worker"], self.kafka, lambda: True, env=env)

    def client(self) -> AnyRedis:
        """redis-py for the test's side: RedisCluster when the services run on a Redis Cluster."""
        if is_cluster_url(self.redis_url):
            return sync_cluster_client(self.redis_url)
        return redis.Redis.from_url(self.redis_url)


def ground_truth(events: list[CanonicalEvent]) -> tuple[dict[str, Counter[str]], Counter[str]]:
    """Per item, count by kind code; per session, number of events; each event_id counted once."""
    items: dict[str, Counter[str]] = {}
    sessions: Counter[str] = Counter()
    for event in {e.event_id: e for e in events}.values():
        items.setdefault(event.item_id, Counter())[KIND_CODES[event.type]] += 1
        sessions[event.session_id] += 1
    return items, sessions


def item_totals(client: AnyRedis, project: str, items: list[str]) -> dict[str, Counter[str]]:
    shards = shard_count(isinstance(client, RedisCluster))
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.hmget(item_key(project, shards, item), [f"{k}:all" for k in "vcap"])
    rows = cast(list[list[Any]], pipe.execute())
    return {
        item: Counter({k: int(v) for k, v in zip("vcap", row, strict=True) if v})
        for item, row in zip(items, rows, strict=True)
    }


def read_many(client: AnyRedis, keys: list[str]) -> list[Any]:
    """GET of many keys: one MGET, or on a cluster one per slot's node (redis-py's mget_nonatomic)."""
    if isinstance(client, RedisCluster):
        return cast(list[Any], client.mget_nonatomic(keys))
    return cast(list[Any], client.mget(keys))


def session_counts(client: AnyRedis, project: str, sessions: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for start in range(0, len(sessions), 2000):
        chunk = sessions[start : start + 2000]
        values = read_many(client, [session_key(project, s) for s in chunk])
        for sid, raw in zip(chunk, values, strict=True):
            if raw:
                counts[sid] = SessionState.from_json(raw).events
    return counts


def applied_total(client: AnyRedis, project: str, items: list[str]) -> int:
    return sum(sum(c.values()) for c in item_totals(client, project, items).values())


__all__ = [
    "EVENTS_TOPIC",
    "Services",
    "applied_total",
    "ground_truth",
    "item_totals",
    "session_counts",
    "worker_partitions",
]


def worker_partitions(client: redis.Redis, project: str) -> dict[str, list[int]]:
    """Partitions per live worker, from their heartbeat keys."""
    import json

    out = {}
    for key in cast(list[bytes], client.keys(f"{project}:workers:*")):
        raw = cast(bytes | None, client.get(key))
        if raw:
            out[key.decode().rsplit(":", 1)[-1]] = json.loads(raw)["partitions"]
    return out
