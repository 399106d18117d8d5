"""Byte compatibility with Feast 0.67 both ways, proved with Feast itself on a real redis-server.

One applied repository per module (Feast's import and apply cost seconds); every test uses its own entity ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from streamrec.devstack.redis_cluster import RedisClusterInfo
from streamrec.features.online import FeatureLayout
from streamrec.features.schema import VIEWS
from streamrec.redis import ClusterRedis
from tests.features.layout_io import add_row, read_rows

pytestmark = pytest.mark.integration

Rows = dict[str, dict[str, dict[str, Any]]]
EVENT_TS_MS = 1_704_164_645_678
REPO_DIR = Path(__file__).resolve().parents[2] / "features" / "repo"


@pytest.fixture(scope="module")
def store(redis_url: str, feast_dir: Path) -> Iterator[Any]:
    from streamrec.features.feast_apply import apply

    yield apply("tfeast", redis_url, feast_dir).store


def feast_rows(store: Any, view: str, entity_ids: list[str]) -> list[dict[str, Any]]:
    """Feast's own `get_online_features`, reshaped to one dict per entity."""
    spec = VIEWS[view]
    refs = [f"{view}:{name}" for name, _ in spec.features]
    got = store.get_online_features(features=refs, entity_rows=[{spec.join_key: e} for e in entity_ids]).to_dict()
    return [{name: got[name][i] for name, _ in spec.features} for i in range(len(entity_ids))]


def prefixed(rows: Rows, view: str, prefix: str) -> dict[str, dict[str, Any]]:
    return {prefix + entity_id: values for entity_id, values in rows[view].items()}


def push_with_feast(store: Any, view: str, rows: dict[str, dict[str, Any]]) -> None:
    from feast.data_source import PushMode

    spec = VIEWS[view]
    frame = pd.DataFrame([{spec.join_key: e, **values} for e, values in rows.items()])
    frame["event_timestamp"] = pd.Timestamp(EVENT_TS_MS, unit="ms", tz="UTC")
    store.push(spec.push_source, frame, to=PushMode.ONLINE)


def write_fast(client: redis.Redis, view: str, rows: dict[str, dict[str, Any]]) -> None:
    layout = FeatureLayout("tfeast")
    with client.pipeline(transaction=False) as pipe:
        for entity_id, values in rows.items():
            add_row(layout, pipe, view, entity_id, values, EVENT_TS_MS)
        pipe.execute()


@pytest.mark.parametrize("view", list(VIEWS))
def test_feast_reads_exactly_what_the_fast_writer_wrote(store: Any, client: redis.Redis, rows: Rows, view: str) -> None:
    written = prefixed(rows, view, "fast-read:")
    write_fast(client, view, written)
    ids = list(written)
    from_feast = feast_rows(store, view, ids)
    assert from_feast == list(written.values())
    for got, want in zip(from_feast, written.values(), strict=True):  # ints stay ints, floats floats
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in want.items()}
    assert read_rows(FeatureLayout("tfeast"), client, view, ids) == from_feast
    # The expiry we add does not hide anything from Feast; a view without TTL (the catalogue's) gets none.
    ttls = {client.ttl(FeatureLayout("tfeast").redis_key(view, e)) for e in ids}
    assert all(ttl > 0 for ttl in ttls) if VIEWS[view].ttl_s else ttls == {-1}


@pytest.mark.parametrize("view", list(VIEWS))
def test_fast_writer_bytes_equal_feast_push_bytes(store: Any, client: redis.Redis, rows: Rows, view: str) -> None:
    push_with_feast(store, view, prefixed(rows, view, "same:feast:"))
    write_fast(client, view, prefixed(rows, view, "same:fast:"))
    layout = FeatureLayout("tfeast")
    for entity_id in rows[view]:
        by_feast = client.hgetall(layout.redis_key(view, "same:feast:" + entity_id))
        by_us = client.hgetall(layout.redis_key(view, "same:fast:" + entity_id))
        assert by_feast and by_us == by_feast


@pytest.mark.parametrize("view", list(VIEWS))
def test_read_rows_decodes_what_feast_pushed(store: Any, client: redis.Redis, rows: Rows, view: str) -> None:
    pushed = prefixed(rows, view, "feast-push:")
    push_with_feast(store, view, pushed)
    ids = [*pushed, "feast-push:absent"]
    read = read_rows(FeatureLayout("tfeast"), client, view, ids, with_ts=True)
    assert read == [{**values, "_event_ts_ms": EVENT_TS_MS} for values in pushed.values()] + [None]


def test_write_to_online_store_is_read_back(store: Any, client: redis.Redis, rows: Rows) -> None:
    frame = pd.DataFrame([{"item_id": "wtos:" + e, **values} for e, values in rows["item_features"].items()])
    frame["event_timestamp"] = pd.Timestamp(EVENT_TS_MS, unit="ms", tz="UTC")
    store.write_to_online_store("item_features", frame)
    ids = ["wtos:" + e for e in rows["item_features"]]
    assert read_rows(FeatureLayout("tfeast"), client, "item_features", ids) == list(rows["item_features"].values())


def test_offline_store_reads_the_batch_files_apply_created(store: Any) -> None:
    entity_df = pd.DataFrame({"item_id": ["a"], "event_timestamp": [pd.Timestamp(EVENT_TS_MS, unit="ms", tz="UTC")]})
    frame = store.get_historical_features(entity_df=entity_df, features=["item_features:views_1h"]).to_df()
    assert list(frame["item_id"]) == ["a"] and frame["views_1h"].isna().all()


def test_apply_is_idempotent_and_drops_views_no_longer_defined(redis_url: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Int64, String

    from streamrec.features.feast_apply import apply

    first = apply("tstale", redis_url, tmp_path)
    old_entity = Entity(name="shop", join_keys=["shop_id"], value_type=ValueType.STRING)
    source = FileSource(name="old_batch", path=str(tmp_path / "old.parquet"), timestamp_field="event_timestamp")
    schema = [Field(name="shop_id", dtype=String), Field(name="n", dtype=Int64)]
    old_view = FeatureView(name="old_view", entities=[old_entity], ttl=timedelta(days=1), schema=schema, source=source)
    first.store.apply([old_entity, source, old_view])
    again = apply("tstale", redis_url, tmp_path)
    assert sorted(again.deleted) == ["old_view", "shop"]
    assert sorted(v.name for v in again.store.list_feature_views()) == sorted(VIEWS)
    assert apply("tstale", redis_url, tmp_path).deleted == []


def test_feast_cli_repo_matches_the_programmatic_one(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path
) -> None:
    from feast.repo_config import load_repo_config
    from feast.repo_operations import parse_repo

    from streamrec.features.config import redis_connection_string
    from streamrec.features.feast_apply import repo_config

    monkeypatch.setenv("STREAMREC_PROJECT", "tcli")
    monkeypatch.setenv("STREAMREC_FEATURES_REDIS_CONNECTION", redis_connection_string(redis_url))
    monkeypatch.setenv("STREAMREC_FEATURES_STATE_DIR", str(tmp_path))
    from_yaml = load_repo_config(REPO_DIR, REPO_DIR / "feature_store.yaml")
    programmatic = repo_config("tcli", redis_url, tmp_path)
    assert from_yaml.project == programmatic.project
    assert from_yaml.online_store.connection_string == programmatic.online_store.connection_string
    assert from_yaml.online_store.key_ttl_seconds == programmatic.online_store.key_ttl_seconds
    assert from_yaml.registry.path == programmatic.registry.path
    assert from_yaml.entity_key_serialization_version == programmatic.entity_key_serialization_version

    # What `feast apply` in features/repo would find: the CLI chdirs into the repo and imports its files.
    monkeypatch.chdir(REPO_DIR)
    monkeypatch.syspath_prepend(str(REPO_DIR))
    monkeypatch.delitem(sys.modules, "streamrec_features", raising=False)
    contents = parse_repo(REPO_DIR)
    assert sorted(v.name for v in contents.feature_views) == sorted(VIEWS)
    assert sorted(e.name for e in contents.entities if not e.name.startswith("__")) == [
        "item",
        "product",
        "session",
        "user",
    ]
    for view in contents.feature_views:
        assert [(f.name, str(f.dtype)) for f in view.features] == [
            (f.name, str(f.dtype)) for f in programmatic_view(view.name).features
        ]
        assert view.ttl is not None and view.ttl.total_seconds() == VIEWS[view.name].ttl_s


def programmatic_view(name: str) -> Any:
    from streamrec.features.definitions import build_definitions

    return next(v for v in build_definitions(Path("data")).feature_views if v.name == name)


def test_cli_apply_and_yaml(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamrec.features.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    common = ["--project", "tclicmd", "--redis-url", redis_url, "--state-dir", str(tmp_path)]
    args = parser.parse_args(["features", "apply", *common])
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["project"] == "tclicmd" and set(VIEWS) <= set(summary["applied"])
    assert (tmp_path / "registry.db").is_file()
    args = parser.parse_args(["features", "yaml", *common])
    assert args.handler(args) == 0
    assert "project: tclicmd" in capsys.readouterr().out


def test_feast_reads_from_a_redis_cluster_what_the_fast_writer_wrote(
    redis_cluster: RedisClusterInfo, rows: Rows, tmp_path: Path
) -> None:
    """On a Redis Cluster the feature rows keep Feast's keys (no hash tags), so Feast's cluster client reads them."""
    from streamrec.features.feast_apply import apply

    store = apply("tfeastc", redis_cluster.url, tmp_path).store
    layout = FeatureLayout("tfeastc")
    for view in VIEWS:
        written = prefixed(rows, view, "cluster:")
        commands = [c for e, v in written.items() for c in layout.row_commands(view, e, v, EVENT_TS_MS)]

        async def write(commands: list[Any] = commands) -> None:
            client = ClusterRedis(redis_cluster.url)
            try:
                await client.execute(commands)
            finally:
                await client.aclose()

        asyncio.run(write())
        assert feast_rows(store, view, list(written)) == list(written.values())
