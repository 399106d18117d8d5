"""The catalogue's Redis layout against a real redis-server (and a Redis Cluster): newer wins, older is ignored,
a deletion blocks resurrection, and a reader's snapshot plus the change stream sees every applied change."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
import redis

from streamrec.devstack.redis_cluster import RedisClusterInfo
from streamrec.features.catalog_store import (
    CatalogGap,
    apply_products,
    catalog_keys,
    load_catalog,
    read_changes,
)
from streamrec.features.online import FeatureLayout
from streamrec.protos.catalog_pb2 import Product
from streamrec.redis import ClusterRedis, FastRedis, sync_client
from tests.features.layout_io import read_rows

pytestmark = pytest.mark.integration

Change = tuple[str, bytes | None, int]


def item(product_id: str, updated_ms: int, title: str = "", **kw: object) -> Change:
    product = Product(product_id=product_id, title=title or f"{product_id}@{updated_ms}", updated_ms=updated_ms, **kw)  # type: ignore[arg-type]
    return product_id, product.SerializeToString(), updated_ms


def apply(url: str, project: str, changes: Sequence[Change]) -> int:
    async def run() -> int:
        client = ClusterRedis(url) if url.startswith("redis+cluster") else FastRedis(url)
        try:
            return await apply_products(client, project, changes)
        finally:
            await client.aclose()

    return asyncio.run(run())


def titles(client: redis.Redis, project: str) -> dict[str, str]:
    products, _ = load_catalog(client, project)
    return {pid: p.title for pid, p in products.items()}


def test_keys_share_one_cluster_slot_and_the_project() -> None:
    keys = catalog_keys("shop")
    assert (keys.products, keys.updated, keys.changes) == (
        "{shop:catalog}:products",
        "{shop:catalog}:updated",
        "{shop:catalog}:changes",
    )


def test_newer_wins_older_and_redelivered_are_ignored(redis_url: str, client: redis.Redis, project: str) -> None:
    assert apply(redis_url, project, [item("a", 10), item("b", 10)]) == 2
    assert apply(redis_url, project, [item("a", 9), item("a", 20), item("b", 10), item("b", 5)]) == 1
    assert titles(client, project) == {"a": "a@20", "b": "b@10"}
    assert apply(redis_url, project, [item("a", 20, title="same time, other record")]) == 0  # the first stands
    assert titles(client, project)["a"] == "a@20"
    assert client.hget(catalog_keys(project).updated, "a") == b"20"
    # one batch holding several records of a product applies them in order
    assert apply(redis_url, project, [item("c", 3), item("c", 1), item("c", 4)]) == 2
    assert titles(client, project)["c"] == "c@4"


def test_a_deletion_removes_the_product_and_blocks_an_older_record(
    redis_url: str, client: redis.Redis, project: str
) -> None:
    apply(redis_url, project, [item("a", 10), item("b", 10, available=False)])
    assert apply(redis_url, project, [("a", None, 15)]) == 1
    assert titles(client, project) == {"b": "b@10"}  # an unavailable product stays
    assert apply(redis_url, project, [item("a", 12), ("a", None, 15)]) == 0  # late and redelivered
    assert "a" not in titles(client, project)
    assert client.hget(catalog_keys(project).updated, "a") == b"15"  # the tombstone
    assert apply(redis_url, project, [item("a", 16)]) == 1  # a newer record brings it back
    assert titles(client, project)["a"] == "a@16"
    assert apply(redis_url, project, [("b", None, 10)]) == 1  # a deletion wins a tie with a product


def test_the_feast_row_follows_the_catalogue(redis_url: str, client: redis.Redis, project: str) -> None:
    layout = FeatureLayout(project)
    apply(redis_url, project, [item("a", 10, brand="Acme", category="tools", price=9.5, available=True)])
    apply(redis_url, project, [item("a", 5, brand="old")])  # ignored: the row keeps the newer record
    want = {"title": "a@10", "brand": "Acme", "category": "tools", "price": 9.5, "available": True, "updated_ms": 10}
    assert read_rows(layout, client, "product_features", ["a"], with_ts=True) == [{**want, "_event_ts_ms": 10}]
    assert client.ttl(layout.redis_key("product_features", "a")) == -1  # a catalogue row does not expire
    apply(redis_url, project, [item("a", 11)])  # no price: the row's price is cleared
    [row] = read_rows(layout, client, "product_features", ["a"])
    assert row is not None and row["price"] is None and row["brand"] == "" and row["available"] is False
    apply(redis_url, project, [("a", None, 12)])
    assert read_rows(layout, client, "product_features", ["a"]) == [None]


def test_changes_are_read_in_order_after_the_snapshot(redis_url: str, client: redis.Redis, project: str) -> None:
    assert load_catalog(client, project) == ({}, "0-0")
    apply(redis_url, project, [item("a", 1), item("b", 1)])
    products, last = load_catalog(client, project)
    assert sorted(products) == ["a", "b"] and last != "0-0"
    assert read_changes(client, project, last, block_ms=0) == []
    apply(redis_url, project, [item("a", 2), ("b", None, 2), item("a", 1)])
    changes = read_changes(client, project, last, block_ms=0)
    assert [(pid, p.title if p else None) for _, pid, p in changes] == [("a", "a@2"), ("b", None)]
    assert [c[0] for c in changes] == sorted(c[0] for c in changes)
    assert read_changes(client, project, changes[-1][0], block_ms=0) == []
    everything = read_changes(client, project, "0-0", block_ms=0, count=2)
    assert [pid for _, pid, _ in everything] == ["a", "b"]  # count bounds one read


def test_a_blocked_reader_wakes_up_on_a_change(redis_url: str, project: str) -> None:
    reader = sync_client(redis_url, timeout_s=10)
    _, last = load_catalog(reader, project)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.extend(read_changes(reader, project, last, block_ms=5000)))
    thread.start()
    apply(redis_url, project, [item("late", 1)])
    thread.join(10)
    assert [pid for _, pid, _ in got] == ["late"]  # type: ignore[misc]


def test_snapshot_plus_changes_miss_nothing_under_concurrent_writes(redis_url: str, project: str) -> None:
    """A writer applies 3,000 changes while a reader loads and then follows: the reader ends with the store."""
    writes = [item(f"p{n % 300}", n + 1) if n % 7 else (f"p{n % 300}", None, n + 1) for n in range(3000)]
    reader = sync_client(redis_url, timeout_s=10)

    def write() -> None:
        for lo in range(0, len(writes), 50):
            apply(redis_url, project, writes[lo : lo + 50])

    writer = threading.Thread(target=write)
    writer.start()
    products, last = load_catalog(reader, project)
    view = {pid: p.title for pid, p in products.items()}
    while True:
        changes = read_changes(reader, project, last, block_ms=200)
        if not changes and not writer.is_alive():
            break
        for entry_id, pid, product in changes:
            last = entry_id
            if product is None:
                view.pop(pid, None)
            else:
                view[pid] = product.title
    writer.join()
    assert view == titles(reader, project)


def test_a_reader_behind_the_trimmed_stream_is_told_to_reload(
    redis_url: str, client: redis.Redis, project: str
) -> None:
    apply(redis_url, project, [item("a", 1)])
    _, first = load_catalog(client, project)
    apply(redis_url, project, [item("a", 2), item("a", 3)])
    client.xtrim(
        catalog_keys(project).changes, maxlen=1, approximate=False
    )  # as XADD's MAXLEN does to a reader far behind
    with pytest.raises(CatalogGap):
        read_changes(client, project, first, block_ms=0)


def test_a_redis_cluster_applies_the_catalogue_and_its_feast_rows(redis_cluster: RedisClusterInfo) -> None:
    project = "tcluster"
    assert apply(redis_cluster.url, project, [item("a", 10, price=1.0), item("b", 10), ("b", None, 11)]) == 3
    assert apply(redis_cluster.url, project, [item("a", 9)]) == 0
    client = sync_client(redis_cluster.url)
    assert titles(client, project) == {"a": "a@10"}
    layout = FeatureLayout(project)
    rows = [client.hgetall(layout.redis_key("product_features", pid)) for pid in ("a", "b")]
    assert rows[0] and not rows[1]
    [_, _, deleted] = read_changes(client, project, "0-0", block_ms=0)
    assert deleted[1:] == ("b", None)
