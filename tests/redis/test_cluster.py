"""The engines on a real Redis Cluster (3 primaries + 3 replicas on loopback): routing, redirects, scripts,
the sharded aggregates against one Redis, and session state whose keys share a slot."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from streamrec.devstack.localstack import LocalStack
from streamrec.devstack.redis_cluster import RedisClusterInfo, start_redis_cluster
from streamrec.errors import ConfigError, StackError
from streamrec.features.aggregate_layout import CLUSTER_SHARDS, item_key, prefixes, shard_of
from streamrec.features.session_store import SessionState, recs_key, session_key
from streamrec.redis import (
    ClusterRedis,
    ClusterTarget,
    FastRedis,
    Script,
    connect,
    execute_with_scripts,
    sync_cluster_client,
)
from streamrec.redis.cluster import slot_of
from streamrec.stream.adapters import RedisStateStore
from streamrec.stream.aggregates import AggregateApplier, AggregateInput, AppliedBatch, split_by_shard

pytestmark = pytest.mark.integration


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_cluster_urls_parse_with_their_seeds_login_and_database_zero_only() -> None:
    target = ClusterTarget.from_url("redis+cluster://app:s%3Fcret@10.0.0.1:7000,10.0.0.2:7001/0")
    assert [seed.address for seed in target.seeds] == ["10.0.0.1:7000", "10.0.0.2:7001"]
    assert {(seed.username, seed.password) for seed in target.seeds} == {("app", "s?cret")}
    assert target.node("10.0.0.9", 7005).password == "s?cret"
    assert ClusterTarget.from_url(target.url()) == target
    assert "s%3Fcret" not in target.redacted() and "***" in target.redacted()
    with pytest.raises(ConfigError, match="database 0 only"):
        ClusterTarget.from_url("redis+cluster://10.0.0.1:7000/3")
    assert isinstance(connect("redis+cluster://10.0.0.1:7000/0"), ClusterRedis)
    assert isinstance(connect("redis://10.0.0.1:7000/0"), FastRedis)


def test_a_pipeline_over_every_primary_answers_in_the_callers_order(redis_cluster: RedisClusterInfo) -> None:
    keys = [f"pipe:{i}" for i in range(300)]

    async def scenario() -> tuple[list[object], list[object]]:
        client = ClusterRedis(redis_cluster.url)
        try:
            written = await client.execute([("SET", key, i) for i, key in enumerate(keys)])
            return written, await client.execute([("GET", key) for key in keys] + [("MGET", *keys)])
        finally:
            await client.aclose()

    written, read = run(scenario())
    assert written == [b"OK"] * len(keys)
    assert read[:-1] == [str(i).encode() for i in range(len(keys))]
    assert read[-1] == [str(i).encode() for i in range(len(keys))]  # an MGET over many slots, split and joined
    assert len({owner_of(redis_cluster, key) for key in keys}) == 3  # the keys really were on every primary


def owner_of(cluster: RedisClusterInfo, key: str) -> str:
    client = redis.Redis.from_url(f"redis://{cluster.primaries[0]}")
    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot_of(key) <= end:
            return f"{primary[0].decode()}:{primary[1]}"
    raise AssertionError(f"no owner for {key}")


def test_a_stale_slot_map_is_corrected_by_moved(redis_cluster: RedisClusterInfo) -> None:
    async def scenario() -> object:
        client = ClusterRedis(redis_cluster.url)
        try:
            await client.execute([("SET", "moved:key", "v")])
            assert client.slot_map is not None
            right = client.slot_map.owners[slot_of("moved:key")]
            wrong = next(node for node in redis_cluster.primaries if node != right)
            client.slot_map.owners[slot_of("moved:key")] = wrong  # as after a reshard this client did not see
            client._stale = False  # and not yet reloaded: only MOVED can tell it
            [value] = await client.execute([("GET", "moved:key")])
            assert client.slot_map.owners[slot_of("moved:key")] == right
            return value
        finally:
            await client.aclose()

    assert run(scenario()) == b"v"


def test_scripts_are_loaded_on_the_nodes_that_lack_them(redis_cluster: RedisClusterInfo) -> None:
    script = Script("return redis.call('INCR', KEYS[1])")
    keys = [f"script:{i}" for i in range(30)]
    for primary in redis_cluster.primaries:
        redis.Redis.from_url(f"redis://{primary}").script_flush()

    async def scenario() -> list[object]:
        client = ClusterRedis(redis_cluster.url)
        try:
            await client.execute([("SET", key, 10) for key in keys])
            return await execute_with_scripts(client, [script.command([key], []) for key in keys], [script])
        finally:
            await client.aclose()

    assert run(scenario()) == [11] * len(keys)  # each run once: the refused ones again, not the others


def events(n: int, seed: int) -> list[AggregateInput]:
    rng = random.Random(seed)
    now = 1_760_000_000_000
    kinds = ["view", "view", "click", "add_to_cart", "purchase"]
    return [
        AggregateInput(
            partition=i % 4,
            offset=i // 4,
            item_id=f"i{rng.randrange(200)}",
            type=rng.choice(kinds),
            ts_ms=now + i * 50,
            category_id=f"c{rng.randrange(12)}",
            user_id=f"u{rng.randrange(40)}" if rng.random() < 0.6 else "",
        )
        for i in range(n)
    ]


def apply_in_batches(client: object, project: str, batches: Sequence[list[AggregateInput]]) -> list[AppliedBatch]:
    async def scenario() -> list[AppliedBatch]:
        applier = AggregateApplier(client, project, "events")  # type: ignore[arg-type]
        try:
            return [await applier.apply(batch) for batch in batches]
        finally:
            await client.aclose()  # type: ignore[attr-defined]

    return run(scenario())


def test_sharded_aggregates_equal_one_redis_and_spread_over_every_shard(
    redis_cluster: RedisClusterInfo, redis_url: str, project: str
) -> None:
    stream = events(3000, seed=5)
    batches = [stream[i : i + 500] for i in range(0, len(stream), 500)]
    batches.insert(3, batches[1])  # a redelivered batch: a no-op on both
    single = apply_in_batches(FastRedis(redis_url), project, batches)
    sharded = apply_in_batches(ClusterRedis(redis_cluster.url), project, batches)

    for one, many in zip(single, sharded, strict=True):
        assert (many.applied, many.redelivered) == (one.applied, one.redelivered)
        assert many.items.keys() == one.items.keys() and many.users == one.users
        for item, aggregate in one.items.items():  # all events within minutes: every shard's windows agree
            assert many.items[item].windows == aggregate.windows
            assert many.items[item].trending_score == pytest.approx(aggregate.trending_score)
    assert sharded[3].applied == 0 and sharded[3].redelivered == 500
    cluster = redis.cluster.RedisCluster.from_url(f"redis://{redis_cluster.primaries[0]}")
    shards_used = {shard_of(e.item_id, CLUSTER_SHARDS) for e in stream}
    assert len(shards_used) == CLUSTER_SHARDS
    assert all(cluster.exists(item_key(project, CLUSTER_SHARDS, e.item_id)) for e in stream[:50])
    slots = {slot_of(prefix) for prefix in prefixes(project, CLUSTER_SHARDS)}
    assert len({owner_of(redis_cluster, f"{{{project}:agg:{n}}}") for n in range(CLUSTER_SHARDS)}) == 3
    assert len(slots) == CLUSTER_SHARDS


def test_an_event_whose_user_is_in_another_shard_is_split_in_halves() -> None:
    stream = events(400, seed=9)
    by_shard = split_by_shard(stream, CLUSTER_SHARDS)
    halves = [e for shard in by_shard.values() for e in shard]
    assert sum(1 for e in halves if e.half != "u") == len(stream)  # every event's item half, once
    assert sum(1 for e in halves if e.user_id and e.half != "i") == sum(1 for e in stream if e.user_id)
    for shard, shard_events in by_shard.items():
        assert all(shard_of(e.item_id, CLUSTER_SHARDS) == shard for e in shard_events if e.half != "u")
        assert all(shard_of(e.user_id, CLUSTER_SHARDS) == shard for e in shard_events if e.user_id and e.half != "i")
        assert [e.offset for e in shard_events if e.partition == 0] == sorted(
            e.offset for e in shard_events if e.partition == 0
        )


def state_with(n_items: int) -> SessionState:
    return SessionState(offset=7, partition=1, items=[f"i{n}" for n in range(n_items)])


def test_session_state_round_trips_through_the_cluster_in_one_slot_per_session(
    redis_cluster: RedisClusterInfo, project: str
) -> None:
    sessions = [f"s{i}" for i in range(200)]
    assert all(slot_of(session_key(project, s)) == slot_of(recs_key(project, s)) for s in sessions)

    async def scenario() -> dict[str, SessionState]:
        client = ClusterRedis(redis_cluster.url, replicated_writes=1)
        store = RedisStateStore(client, project)
        try:
            states = {s: state_with(i % 5 + 1) for i, s in enumerate(sessions)}
            await store.write(states, {}, AppliedBatch())
            raw = await client.mget(session_key(project, "s3"), recs_key(project, "s3"))
            assert raw[1] is None and raw[0] is not None
            return await store.read_states(sessions)
        finally:
            await client.aclose()

    read = run(scenario())
    assert {s: len(state.items) for s, state in read.items()} == {s: i % 5 + 1 for i, s in enumerate(sessions)}


def test_a_kept_cluster_starts_again_with_its_data_on_its_ports(tmp_path: Path) -> None:
    kept = tmp_path / "redis-cluster"
    with LocalStack(state_dir=tmp_path / "first") as stack:
        first = start_redis_cluster(stack, primaries=3, replicas_per_primary=1, appendonly=True, data_dir=kept)
        cluster = sync_cluster_client(first.url, 5)
        cluster.mset_nonatomic({f"kept:{i}": i for i in range(100)})
        cluster.close()
    with LocalStack(state_dir=tmp_path / "second") as stack:
        again = start_redis_cluster(stack, primaries=3, replicas_per_primary=1, appendonly=True, data_dir=kept)
        cluster = sync_cluster_client(again.url, 5)
        values = cluster.mget_nonatomic([f"kept:{i}" for i in range(100)])
        cluster.close()
        with pytest.raises(StackError, match="3 primaries, not 2"):
            start_redis_cluster(stack, primaries=2, appendonly=True, data_dir=kept)
    assert again.nodes == first.nodes
    assert values == [str(i).encode() for i in range(100)]
