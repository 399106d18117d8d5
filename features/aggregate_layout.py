"""Where the worker's item and user aggregates live in Redis: one key prefix per aggregate shard.

One Redis holds one shard, prefix `{project}:agg`:

    {project}:agg:item:{item}        hash: window buckets and sums, trending score   (stream/lua/apply_events.lua)
    {project}:agg:user:{user}        hash: category counts; `...:purchases` a list
    {project}:agg:trending           sorted set: items by decayed trending score
    {project}:agg:watermark          the largest event time applied
    {project}:agg:offsets:{topic}    hash: the last offset applied, per partition

A Redis Cluster holds `CLUSTER_SHARDS` shards, prefix `{{project}:agg:N}`: the hash tag puts every key of one
shard in one slot, so one script call per shard and batch can touch them all, and the shards spread the
counters over as many slots (no hot slot for the busiest items). An item's counters are in shard
`shard_of(item)`, a user's in `shard_of(user)`. Each shard keeps its own offsets (so a batch applied to some
shards and not others is completed by its retry) and its own event-time watermark, which trails the newest
event by at most what that shard has not yet seen. Readers merge the shards' trending sets: their scores are
on one scale (ln score + decay x reference time).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Sequence

from streamrec.redis import Command

CLUSTER_SHARDS = 16


def shard_count(cluster: bool) -> int:
    return CLUSTER_SHARDS if cluster else 1


def prefixes(project: str, shards: int) -> list[str]:
    if shards == 1:
        return [f"{project}:agg"]
    return [f"{{{project}:agg:{n}}}" for n in range(shards)]


def shard_of(entity_id: str, shards: int) -> int:
    return zlib.crc32(entity_id.encode()) % shards if shards > 1 else 0


def item_key(project: str, shards: int, item_id: str) -> str:
    return f"{prefixes(project, shards)[shard_of(item_id, shards)]}:item:{item_id}"


def user_key(project: str, shards: int, user_id: str) -> str:
    return f"{prefixes(project, shards)[shard_of(user_id, shards)]}:user:{user_id}"


def trending_commands(project: str, shards: int, n: int) -> list[Command]:
    """The head of every shard's trending set, with scores; `merge_trending` makes one list of the replies."""
    return [("ZREVRANGE", f"{prefix}:trending", 0, n - 1, "WITHSCORES") for prefix in prefixes(project, shards)]


def merge_trending(replies: Sequence[object], n: int) -> list[str]:
    """The `n` best items of the shards' WITHSCORES replies, best first."""
    scored: list[tuple[float, str]] = []
    for reply in replies:
        flat = list(reply)  # type: ignore[call-overload]
        for member, score in zip(flat[::2], flat[1::2], strict=True):
            scored.append((float(score), member.decode() if isinstance(member, bytes) else str(member)))
    return [item for _, item in heapq.nlargest(n, scored)]


def watermark_commands(project: str, shards: int) -> list[Command]:
    return [("GET", f"{prefix}:watermark") for prefix in prefixes(project, shards)]


def latest_watermark(replies: Sequence[object]) -> int:
    return max((int(reply) for reply in replies if reply is not None), default=0)  # type: ignore[call-overload]
