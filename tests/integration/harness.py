"""Helpers of the integration tests: a running set of services, and ground truth against what Redis holds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import redis

from streamrec.config import EVENTS_TOPIC
from streamrec.devstack.localstack import LocalStack, Service
from streamrec.events import CanonicalEvent
from streamrec.features.session_store import SessionState, session_key

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

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)


def ground_truth(events: list[CanonicalEvent]) -> tuple[dict[str, Counter[str]], Counter[str]]:
    """Per item, count by kind code; per session, number of events; each event_id counted once."""
    items: dict[str, Counter[str]] = {}
    sessions: Counter[str] = Counter()
    for event in {e.event_id: e for e in events}.values():
        items.setdefault(event.item_id, Counter())[KIND_CODES[event.type]] += 1
        sessions[event.session_id] += 1
    return items, sessions


def item_totals(client: redis.Redis, project: str, items: list[str]) -> dict[str, Counter[str]]:
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.hmget(f"{project}:agg:item:{item}", [f"{k}:all" for k in "vcap"])
    rows = cast(list[list[Any]], pipe.execute())
    return {
        item: Counter({k: int(v) for k, v in zip("vcap", row, strict=True) if v})
        for item, row in zip(items, rows, strict=True)
    }


def session_counts(client: redis.Redis, project: str, sessions: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for start in range(0, len(sessions), 2000):
        chunk = sessions[start : start + 2000]
        values = cast(list[Any], client.mget([session_key(project, s) for s in chunk]))
        for sid, raw in zip(chunk, values, strict=True):
            if raw:
                counts[sid] = SessionState.from_json(raw).events
    return counts


def applied_total(client: redis.Redis, project: str, items: list[str]) -> int:
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
