"""Item and user aggregates in Redis, applied exactly once per event by one atomic Lua script per batch.

Why in Redis and not in a Faust table: items and users are spread over every session partition, so their
counters are shared state; Redis applies each batch atomically together with the per-partition offset
watermark, which makes a redelivered event (after a kill -9 or a rebalance) a no-op, with memory bounded by
the number of partitions. See stream/lua/apply_events.lua for the window and lateness policy, and
features/aggregate_layout.py for the shards a Redis Cluster spreads the counters over: a batch is one script call
per shard it touches, all sent in one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streamrec.features.aggregate_layout import prefixes, shard_count, shard_of
from streamrec.features.schema import ITEM_FEATURES, ITEM_TTL_S, MAX_RECENT_ITEMS, TRENDING_HALF_LIFE_MS, USER_TTL_S
from streamrec.redis import RedisClient, Script, execute_with_scripts

SCRIPT = (Path(__file__).parent / "lua" / "apply_events.lua").read_text()
MAX_TRENDING_ITEMS = 10_000  # the trending set keeps this many items; Recommend reads its head
KIND_CODES = {"view": "v", "click": "c", "add_to_cart": "a", "purchase": "p"}
# the windowed counts of an item row, in the order the script returns them (features/schema.py ITEM_FEATURES)
WINDOW_FEATURES = tuple(name for name, kind in ITEM_FEATURES.features if kind == "int64")


@dataclass(frozen=True)
class AggregateInput:
    partition: int
    offset: int
    item_id: str
    type: str
    ts_ms: int
    category_id: str
    user_id: str
    half: str = "b"  # on a Redis Cluster, the part of the event one shard counts: b(oth), i(tem), u(ser)


@dataclass
class ItemAggregate:
    windows: dict[str, int]
    trending_score: float
    trending_ref_ms: int

    @property
    def conversion_rate(self) -> float:
        w = self.windows
        return w["purchases_24h"] / max(1, w["views_24h"] + w["clicks_24h"])


@dataclass
class UserAggregate:
    category_counts: dict[str, int]
    purchases: list[str]

    def top_categories(self, n: int = 10) -> list[tuple[str, int]]:
        return sorted(self.category_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass
class AppliedBatch:
    applied: int = 0
    redelivered: int = 0
    late: int = 0
    watermark_ms: int = 0
    items: dict[str, ItemAggregate] = field(default_factory=dict)
    users: dict[str, UserAggregate] = field(default_factory=dict)


def script_args(prefix: str, topic: str, events: Sequence[AggregateInput]) -> list[Any]:
    limits = [TRENDING_HALF_LIFE_MS, ITEM_TTL_S, USER_TTL_S, MAX_RECENT_ITEMS, MAX_TRENDING_ITEMS]
    args: list[Any] = [prefix, topic, *limits, len(events)]
    for e in events:
        args += [e.partition, e.offset, e.item_id, KIND_CODES[e.type], e.ts_ms, e.category_id, e.user_id, e.half]
    return args


def parse_reply(reply: Sequence[Any]) -> AppliedBatch:
    out = AppliedBatch(int(reply[0]), int(reply[1]), int(reply[2]), int(reply[3]))
    pos = 5
    for _ in range(int(reply[4])):
        item = _text(reply[pos])
        counts = [int(x) for x in reply[pos + 1 : pos + 9]]
        out.items[item] = ItemAggregate(
            dict(zip(WINDOW_FEATURES, counts, strict=True)), float(reply[pos + 9]), int(reply[pos + 10])
        )
        pos += 11
    n_users = int(reply[pos])
    pos += 1
    for _ in range(n_users):
        user = _text(reply[pos])
        n_pairs = int(reply[pos + 1])
        pairs = reply[pos + 2 : pos + 2 + 2 * n_pairs]
        cats = {_text(pairs[j]): int(pairs[j + 1]) for j in range(0, len(pairs), 2)}
        pos += 2 + 2 * n_pairs
        n_purchases = int(reply[pos])
        purchases = [_text(x) for x in reply[pos + 1 : pos + 1 + n_purchases]]
        pos += 1 + n_purchases
        out.users[user] = UserAggregate(cats, purchases)
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def split_by_shard(events: Sequence[AggregateInput], shards: int) -> dict[int, list[AggregateInput]]:
    """Each shard's events, in order; an event whose item and user are in two shards goes to each as a half."""
    by_shard: dict[int, list[AggregateInput]] = {}
    for event in events:
        item_shard = shard_of(event.item_id, shards)
        user_shard = shard_of(event.user_id, shards) if event.user_id else item_shard
        if item_shard == user_shard:
            by_shard.setdefault(item_shard, []).append(event)
        else:
            by_shard.setdefault(item_shard, []).append(replace(event, half="i"))
            by_shard.setdefault(user_shard, []).append(replace(event, half="u"))
    return by_shard


def merge(batches: Sequence[AppliedBatch]) -> AppliedBatch:
    """One batch's result from its shards' (their items and users are disjoint)."""
    out = AppliedBatch()
    for batch in batches:
        out.applied += batch.applied
        out.redelivered += batch.redelivered
        out.late += batch.late
        out.watermark_ms = max(out.watermark_ms, batch.watermark_ms)
        out.items.update(batch.items)
        out.users.update(batch.users)
    return out


class AggregateApplier:
    """Runs the script through the hot-path Redis client, by sha (loaded again if Redis forgot it): one call on
    one Redis, one call per touched shard on a Redis Cluster, in one pipeline."""

    def __init__(self, client: RedisClient, project: str, topic: str) -> None:
        self.client = client
        self.script = Script(SCRIPT)
        self.shards = shard_count(client.is_cluster)
        self.prefixes = prefixes(project, self.shards)
        self.topic = topic

    async def apply(self, events: Sequence[AggregateInput]) -> AppliedBatch:
        if not events:
            return AppliedBatch()
        commands = []
        for shard, shard_events in sorted(split_by_shard(events, self.shards).items()):
            prefix = self.prefixes[shard]
            keys = [f"{prefix}:offsets:{self.topic}"]  # the key the script writes first: routes it on a cluster
            commands.append(self.script.command(keys, script_args(prefix, self.topic, shard_events)))
        replies = await execute_with_scripts(self.client, commands, [self.script])
        return merge([parse_reply(reply) for reply in replies])  # type: ignore[arg-type]
